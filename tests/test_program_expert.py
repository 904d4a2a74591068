"""ProgramExpert: a user's own model as TorchScript files, as source and as target, through a config."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from net2net.config import instantiate_from_config
from net2net.experts import ProgramExpert, SourceExpert, TargetExpert
from net2net.experts.protocols import check_expert

# exporting the test models with torch.jit warns on torch >= 2.10 (deprecated, still read and written)
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z)).view(-1, 1, 4, 4)  # (B, 16) -> (B, 1, 4, 4)


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    enc, dec = _Encoder().eval(), _Decoder().eval()
    torch.jit.script(enc).save(str(tmp_path / "enc.pt"))
    torch.jit.trace(dec, torch.randn(2, 3)).save(str(tmp_path / "dec.pt"))
    return enc, dec, tmp_path


def test_source_and_target_from_torchscript_match_the_models(files) -> None:
    enc, dec, d = files
    x = torch.randn(10, 1, 4, 4)
    source = ProgramExpert(encoder=d / "enc.pt", batch_size=3)  # 4 calls of at most 3 rows
    assert isinstance(source, SourceExpert)
    with torch.no_grad():
        torch.testing.assert_close(source.encode(x), enc(x), rtol=0, atol=1e-6)
    target = instantiate_from_config({"target": "net2net.experts.ProgramExpert",
                                      "params": {"encoder": str(d / "enc.pt"), "decoder": str(d / "dec.pt")}})  # fmt: skip
    assert isinstance(target, TargetExpert)
    check_expert(target, "target", "data.params.target", needs=("encode",))
    z = target.encode(x)
    with torch.no_grad():
        torch.testing.assert_close(target.decode(z), dec(enc(x)), rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in target.parameters())
    with pytest.raises(TypeError, match="no decoder file"):
        source.decode(z)
    with pytest.raises(TypeError, match="no encoder file"):
        ProgramExpert(decoder=d / "dec.pt").encode(x)


def test_fingerprint_follows_the_file_contents(files) -> None:
    _, _, d = files
    before = ProgramExpert(encoder=d / "enc.pt").fingerprint()
    assert before == ProgramExpert(encoder=d / "enc.pt").fingerprint()
    torch.manual_seed(1)
    torch.jit.script(_Encoder().eval()).save(str(d / "enc.pt"))  # re-exported with other weights
    assert ProgramExpert(encoder=d / "enc.pt").fingerprint() != before


def test_wrong_outputs_and_files_get_clear_errors(files, tmp_path) -> None:
    _, _, d = files
    source = ProgramExpert(encoder=d / "enc.pt")
    with pytest.raises(ValueError, match=r"encoder dec.pt failed on an input of shape \(4, 2\)"):
        ProgramExpert(encoder=d / "dec.pt").encode(torch.randn(4, 2))  # (4, 2) into Linear(3, 16)
    with pytest.raises(ValueError, match=r"decoder returned shape \(4, 3\); expected images"):
        ProgramExpert(decoder=d / "enc.pt").decode(torch.randn(4, 1, 4, 4))  # an encoder as decoder: (B, 3) codes
    with pytest.raises(ValueError, match=r"B >= 1, received shape \(0, 1, 4, 4\)"):
        source.encode(torch.zeros(0, 1, 4, 4))
    nan = torch.full((2, 1, 4, 4), float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        source.encode(nan)
    with pytest.raises(FileNotFoundError, match="no such file"):
        ProgramExpert(encoder=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="neither"):
        ProgramExpert()
    pickled = tmp_path / "pickled.pt"
    torch.save(_Encoder(), pickled)  # a whole pickled module: would run code on load
    with pytest.raises(ValueError, match="refused"):
        ProgramExpert(encoder=pickled)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a zip file"):
        ProgramExpert(encoder=plain)
