"""Compute accounting of training runs: wall time, energy, CO₂ and cost per run, and a report like Tab. S1.

Every ``net2net train`` run has a :class:`ComputeTracker` (default callback ``compute``; configure it under
``lightning.callbacks.compute.params`` or remove it with ``compute: null``). It runs codecarbon's
``OfflineEmissionsTracker`` from the start to the end of the training loop on rank zero and writes
``<log dir>/compute.json``; ``net2net report`` (or :func:`compute_table`) turns the records of several runs into
a Markdown table with a total row.

How energy is measured (the record's ``measurement`` field):

* ``"meter"``: codecarbon can read a power meter: RAPL (``/sys/class/powercap/intel-rapl``) for the CPU, NVML
  for NVIDIA GPUs or AMD SMI for AMD GPUs. ``energy_kwh`` is then codecarbon's total, i.e. the metered parts
  plus its own estimates of the parts without a meter (RAM from the installed memory; a CPU without RAPL from
  its TDP and load). Meters read the whole machine (all GPUs visible to the process), other jobs included.
* ``"estimated from N W"``: no meter is readable (common in VMs and containers, which hide RAPL, when there is
  no GPU either), or ``force_fallback`` is set. ``energy_kwh = fallback_power_w × wall time``: a constant,
  stated assumption about the whole machine's average draw, which does not depend on other jobs sharing the
  machine. codecarbon's own guess in that case (a CPU-load model over a TDP looked up from the CPU's name, or
  4 W per thread for unknown CPUs, plus about 5 W per memory module guessed from the RAM size) is kept as
  ``codecarbon_energy_kwh`` for comparison. On a 2-thread VM with 24 GB this guess is about 8 W (CPU) + 20 W
  (RAM), so ``fallback_power_w`` should be set to the machine's real draw where it is known.

``co2_kg = energy_kwh × carbon_intensity_kg_per_kwh`` of the country (codecarbon's offline energy-mix data,
``country_iso_code``, ISO 3166-1 alpha-3), ``cost = energy_kwh × price_per_kwh``. Multi-node runs are measured on
node 0 and scaled by the number of nodes (the measurement says so).

``compute.json`` fields: ``experiment`` (the log folder's name), ``hardware`` (GPU name and count, or the CPU
model and threads), ``devices`` (e.g. ``"2 × cuda"``), ``wall_seconds`` and ``hours`` of the training loop,
``energy_kwh``, ``co2_kg``, ``cost``, ``currency``, ``country``, ``country_name``,
``carbon_intensity_kg_per_kwh``, ``price_per_kwh``, ``measurement``, ``power_meters``, ``fallback_power_w``,
``codecarbon_energy_kwh``, ``codecarbon_version``, ``steps`` (optimiser steps), ``global_step``, ``calls`` and
``interrupted`` (the exception that ended the latest call, e.g. ``"KeyboardInterrupt"``, or null).

Resuming: a call that continues from a checkpoint (its first step is > 0) adds its time, energy, CO₂, cost and
steps to the existing record; a call that starts at step 0 (a new run, or ``--no-resume``) replaces it. A call
ended by an exception or Ctrl-C still writes its record.

codecarbon runs fully offline here: no network access, no ``emissions.csv`` (no output method), its console
output limited to warnings, minus the setup warnings that ``measurement`` already states.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L

from ..io import atomic_path

__all__ = ["RECORD_NAME", "ComputeTracker", "compute_table", "find_compute_records", "power_meters"]

RECORD_NAME = "compute.json"
PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

# codecarbon's setup warnings that the record's "measurement" field states anyway (or that concern options set
# on purpose, such as allow_multiple_runs); everything else it warns about still shows.
_SETUP_NOISE = (
    "Multiple instances of codecarbon are allowed",
    "No CPU tracking mode found",
    "Failed to match CPU TDP",
    "but we don't know it",
    "default power consumption of",
)


class _DropSetupNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(s in message for s in _SETUP_NOISE)


def _quiet_codecarbon() -> None:
    """codecarbon logs INFO to its own stderr handler by default: keep warnings, drop the expected setup ones."""
    logger = logging.getLogger("codecarbon")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropSetupNoise) for f in logger.filters):
        logger.addFilter(_DropSetupNoise())


def power_meters() -> list[str]:
    """The power meters codecarbon can read on this machine: ``"RAPL"``, ``"NVML"``, ``"AMD SMI"`` (maybe none)."""
    from codecarbon.core import cpu, gpu

    _quiet_codecarbon()
    found = []
    if cpu.is_rapl_available():
        found.append("RAPL")
    if gpu.is_nvidia_system():
        found.append("NVML")
    if gpu.is_rocm_system():
        found.append("AMD SMI")
    return found


def _carbon_intensity(country_iso_code: str) -> tuple[float, str]:
    """(kg CO₂ per kWh, country name) from codecarbon's offline energy-mix data; ValueError for unknown codes."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    _quiet_codecarbon()
    mix = DataSource().get_global_energy_mix_data()
    if country_iso_code not in mix:
        raise ValueError(
            f"ComputeTracker: country_iso_code {country_iso_code!r} is not in codecarbon's energy-mix data "
            f"({len(mix)} countries, e.g. DEU, FRA, GBR, USA); use an ISO 3166-1 alpha-3 code from that list"
        )
    geo = GeoMetadata(country_iso_code=country_iso_code, country_name=mix[country_iso_code]["country_name"])
    kg = Emissions(DataSource()).get_country_emissions(Energy.from_energy(1.0), geo)
    return float(kg), str(geo.country_name)


class ComputeTracker(L.Callback):
    """Measure the training loop's time, energy, CO₂ and cost with codecarbon (offline); write ``compute.json``.

    See the module docstring for how energy is measured, the record's fields and resuming.

    Arguments:
        country_iso_code: where the machine runs, ISO 3166-1 alpha-3 (``"DEU"``, ``"FRA"``, ``"USA"``); sets the
            carbon intensity.
        price_per_kwh: electricity price in ``currency`` per kWh (>= 0).
        currency: currency of ``price_per_kwh`` and ``cost``.
        fallback_power_w: assumed average draw of the whole machine in watts, used when no power meter is
            readable (or with ``force_fallback``).
        force_fallback: use ``fallback_power_w`` even where a meter is readable.
        out_dir: folder of ``compute.json``; ``None`` uses the trainer's ``default_root_dir`` (the run's log folder).

    Raises:
        ValueError: for a negative or non-finite price, a non-positive fallback power, or a country code that is
            not three letters or not in codecarbon's data.

    Example:
        >>> ComputeTracker(country_iso_code="FRA", price_per_kwh=0.25, fallback_power_w=150)
        ComputeTracker(country_iso_code='FRA', price_per_kwh=0.25, currency='EUR', fallback_power_w=150.0)
    """

    def __init__(
        self,
        country_iso_code: str = "DEU",
        price_per_kwh: float = 0.30,
        currency: str = "EUR",
        fallback_power_w: float = 100.0,
        force_fallback: bool = False,
        out_dir: PathLike | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(country_iso_code, str) or not re.fullmatch(r"[A-Za-z]{3}", country_iso_code):
            raise ValueError(
                f"ComputeTracker: country_iso_code must be an ISO 3166-1 alpha-3 code (three letters, e.g. 'DEU' "
                f"for Germany), got {country_iso_code!r}"
            )
        if not math.isfinite(price_per_kwh) or price_per_kwh < 0:
            raise ValueError(f"ComputeTracker: price_per_kwh must be a finite number >= 0, got {price_per_kwh}")
        if not math.isfinite(fallback_power_w) or fallback_power_w <= 0:
            raise ValueError(
                f"ComputeTracker: fallback_power_w must be a positive number of watts, got {fallback_power_w}"
            )
        if not currency:
            raise ValueError("ComputeTracker: currency must be a non-empty string such as 'EUR'")
        self.country_iso_code = country_iso_code.upper()
        self.price_per_kwh = float(price_per_kwh)
        self.currency = currency
        self.fallback_power_w = float(fallback_power_w)
        self.force_fallback = force_fallback
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.intensity, self.country_name = _carbon_intensity(self.country_iso_code)
        self._tracker: Any = None
        self._meters: list[str] = []
        self._t0: float | None = None
        self._start_step = 0

    def __repr__(self) -> str:
        return (
            f"ComputeTracker(country_iso_code={self.country_iso_code!r}, price_per_kwh={self.price_per_kwh}, "
            f"currency={self.currency!r}, fallback_power_w={self.fallback_power_w})"
        )

    def record_path(self, trainer: L.Trainer) -> Path:
        """``<out_dir>/compute.json`` (``out_dir`` defaults to the trainer's ``default_root_dir``)."""
        root = self.out_dir if self.out_dir is not None else Path(trainer.default_root_dir)
        return root / RECORD_NAME

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from codecarbon import OfflineEmissionsTracker

        _quiet_codecarbon()
        self._meters = [] if self.force_fallback else power_meters()
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country_iso_code,
            log_level="warning",
            output_methods=[],  # no emissions.csv, no API
            emissions_endpoint="",  # overrides an endpoint from a ~/.codecarbon.config: no network
            electricitymaps_api_token=None,
            allow_multiple_runs=True,  # the single-run lock would replace Lightning's Ctrl-C handling
        )
        self._tracker.start()
        self._start_step = trainer.global_step
        self._t0 = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, None)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._finish(trainer, type(exception).__name__)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._finish(trainer, None)  # only acts if neither hook above ran

    def _finish(self, trainer: L.Trainer, interrupted: str | None) -> None:
        if self._t0 is None:
            return
        wall = time.perf_counter() - self._t0
        self._t0 = None
        tracker, self._tracker = self._tracker, None
        try:  # a failure here must not cost the run its final checkpoint and export
            tracker.stop()
            record = self._record(trainer, tracker.final_emissions_data, wall, interrupted)
            path = self.record_path(trainer)
            if self._start_step > 0:
                record = _merge(_read(path), record)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except Exception:
            log.exception("ComputeTracker: the compute record was not written")
            return
        r = record
        log.info("compute: %.3g kWh (%s), %.3g kg CO2, %.3g %s; %s",
                 r["energy_kwh"], r["measurement"], r["co2_kg"], r["cost"], self.currency, path)  # fmt: skip

    def _record(self, trainer: L.Trainer, data: Any, wall: float, interrupted: str | None) -> dict[str, Any]:
        """This call's record from codecarbon's ``EmissionsData`` and the wall time of the training loop."""
        import codecarbon

        nodes = trainer.num_nodes
        device = trainer.strategy.root_device
        if device.type == "cuda":
            import torch

            hardware = f"{trainer.num_devices * nodes} × {torch.cuda.get_device_name(device)}"
        else:
            hardware = f"{data.cpu_model or 'unknown CPU'} ({data.cpu_count} threads)" + (
                f" × {nodes}" if nodes > 1 else ""
            )
        codecarbon_kwh = float(data.energy_consumed) * nodes
        if self._meters:
            method, energy = "meter", codecarbon_kwh
        else:
            method, energy = f"estimated from {self.fallback_power_w:g} W", self.fallback_power_w * wall / 3.6e6 * nodes
        if nodes > 1:
            method += f" on node 0, × {nodes} nodes"
        return {
            "experiment": self.record_path(trainer).parent.name,
            "hardware": hardware,
            "devices": f"{trainer.num_devices * nodes} × {device.type}",
            "wall_seconds": wall,
            "hours": wall / 3600,
            "energy_kwh": energy,
            "co2_kg": energy * self.intensity,
            "cost": energy * self.price_per_kwh,
            "currency": self.currency,
            "country": self.country_iso_code,
            "country_name": self.country_name,
            "carbon_intensity_kg_per_kwh": self.intensity,
            "price_per_kwh": self.price_per_kwh,
            "measurement": method,
            "power_meters": self._meters,
            "fallback_power_w": self.fallback_power_w,
            "codecarbon_energy_kwh": codecarbon_kwh,
            "codecarbon_version": codecarbon.__version__,
            "steps": trainer.global_step - self._start_step,
            "global_step": trainer.global_step,
            "calls": 1,
            "interrupted": interrupted,
        }


_SUMMED = ("wall_seconds", "hours", "energy_kwh", "co2_kg", "cost", "codecarbon_energy_kwh", "steps", "calls")
_JOINED = ("hardware", "devices", "measurement", "currency", "country")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ComputeTracker: ignoring the unreadable previous record %s (%s)", path, e)
        return None
    return record if isinstance(record, dict) else None


def _merge(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """``current`` with the totals of ``previous`` added (text fields that differ are joined with '; ')."""
    if previous is None:
        return current
    merged = dict(current)
    for key in _SUMMED:
        merged[key] = previous.get(key, 0) + current[key]
    for key in _JOINED:
        values = [v for v in str(previous.get(key) or "").split("; ") if v]
        merged[key] = "; ".join([*values, current[key]] if current[key] not in values else values)
    return merged


def find_compute_records(folders: Iterable[PathLike]) -> list[Path]:
    """The ``compute.json`` files in and under ``folders`` (a ``compute.json`` path is taken as is), sorted.

    Raises:
        FileNotFoundError: if a folder does not exist.
    """
    found: set[Path] = set()
    for folder in map(Path, folders):
        if folder.is_file():
            found.add(folder)
        elif folder.is_dir():
            found.update(folder.rglob(RECORD_NAME))
        else:
            raise FileNotFoundError(f"no such folder: {folder}")
    return sorted(found)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def compute_table(run_dirs: Sequence[PathLike]) -> str:
    """A Markdown table like Tab. S1 of the paper: one row per run folder (or ``compute.json``), then the total.

    Columns: experiment, hardware, hours, energy (kWh), CO₂ (kg), cost, measurement. The total's cost is only
    summed when all runs share one currency.

    Example:
        >>> print(compute_table(["runs/autoencoder", "runs/text2image"]))  # doctest: +SKIP
        | experiment | hardware | hours | energy (kWh) | CO₂ (kg) | cost (EUR) | measurement |
        ...
    """
    paths = [Path(p) if Path(p).name == RECORD_NAME else Path(p) / RECORD_NAME for p in run_dirs]
    records = []
    for path in paths:
        record = _read(path)
        if record is None:
            raise FileNotFoundError(f"compute_table: no readable {RECORD_NAME} at {path}")
        records.append(record)
    names = [p.parent.name for p in paths]
    if len(set(names)) < len(names):  # same folder name in different places: show the paths
        names = [str(p.parent) for p in paths]
    currencies = {str(r.get("currency", "")) for r in records}
    currency = currencies.pop() if len(currencies) == 1 else None
    cost_header = f"cost ({currency})" if currency else "cost"
    lines = [
        f"| experiment | hardware | hours | energy (kWh) | CO₂ (kg) | {cost_header} | measurement |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for name, r in zip(names, records, strict=True):
        cost = _num(r["cost"]) if currency else f"{_num(r['cost'])} {r.get('currency', '')}"
        cells = [name, r.get("hardware", ""), _num(r["hours"]), _num(r["energy_kwh"]), _num(r["co2_kg"]), cost,
                 r.get("measurement", "")]  # fmt: skip
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    total_cost = _num(sum(r["cost"] for r in records)) if currency else "–"
    lines.append(
        f"| **total** | | {_num(sum(r['hours'] for r in records))} | {_num(sum(r['energy_kwh'] for r in records))} "
        f"| {_num(sum(r['co2_kg'] for r in records))} | {total_cost} | |"
    )
    return "\n".join(lines)
