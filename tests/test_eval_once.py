"""Work an evaluation does once: the float32 copy of a bf16 model's LM head (made again only when the sweep loads
other weights into it), and ``babymerge eval``'s input checks (not repeated by lm-eval's start-up hook)."""

from __future__ import annotations

import numpy as np
import torch
from helpers import WORDS
from lm_eval.api.instance import Instance

from babymerge.evaluation import plugin
from babymerge.evaluation.run import babyllava_lm, run_cli


def requests(n: int = 12) -> list[Instance]:
    rng = np.random.default_rng(0)
    pairs = [("", " ".join(rng.choice(WORDS, 3 + i % 4)).capitalize() + ".") for i in range(n)]
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def uncached_head(lm):
    """``_head`` as it was: a float32 copy of the weights on every batch."""

    def head(rows):
        weight = lm.model.get_output_embeddings().weight
        return torch.nn.functional.linear(rows.float(), weight.float())

    return head


def test_a_bf16_head_is_copied_to_float32_once_and_again_after_new_weights(tiny_tokenizer, monkeypatch):
    from babymerge.training.init import init_model

    model = init_model(tiny_tokenizer, "tiny", seed=3).to(torch.bfloat16).eval()
    lm = babyllava_lm(model, tiny_tokenizer, batch_size=2)
    weight = model.get_output_embeddings().weight
    assert weight.dtype == torch.bfloat16 and model.get_output_embeddings().bias is None
    copies = []
    to_float = torch.Tensor.float

    def counted(tensor, *args, **kwargs):
        if tensor.dtype == torch.bfloat16 and tensor.data_ptr() == weight.data_ptr():
            copies.append(tensor.shape)
        return to_float(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "float", counted)
    cached = [a[0] for a in lm.loglikelihood(requests(), disable_tqdm=True)]
    again = [a[0] for a in lm.loglikelihood(requests(), disable_tqdm=True)]
    assert len(copies) == 1 and cached == again  # 12 requests in batches of 2, scored twice: one copy

    with monkeypatch.context() as patched:
        patched.setattr(lm, "_head", uncached_head(lm))
        assert [a[0] for a in lm.loglikelihood(requests(), disable_tqdm=True)] == cached  # scores unchanged
    assert len(copies) > 2  # the uncached head copies on every batch
    copies.clear()

    other = init_model(tiny_tokenizer, "tiny", seed=4).to(torch.bfloat16).state_dict()
    model.load_state_dict(other)  # in place, as the sweep loads each merge
    new = [a[0] for a in lm.loglikelihood(requests(), disable_tqdm=True)]
    assert len(copies) == 1 and new != cached
    fresh = babyllava_lm(model, tiny_tokenizer, batch_size=2)
    assert [a[0] for a in fresh.loglikelihood(requests(), disable_tqdm=True)] == new


def test_babymerge_eval_checks_its_inputs_once(world, make_checkpoint, tmp_path, monkeypatch):
    calls = {"names": 0, "data": 0}
    names, data = plugin.check_task_names, plugin.check_task_data

    def count(kind, check):
        def counted(*args, **kwargs):
            calls[kind] += 1
            return check(*args, **kwargs)

        return counted

    monkeypatch.setattr(plugin, "check_task_names", count("names", names))
    monkeypatch.setattr(plugin, "check_task_data", count("data", data))
    table = run_cli(
        str(make_checkpoint(5)),
        "babylm_blimp_fast",
        output_path=str(tmp_path / "results"),
        data_dir=str(world / "evaluation_data"),
        limit="4",
        extra=["--verbosity", "ERROR"],
    )
    assert "| babylm_blimp_fast | acc |" in table
    assert calls == {"names": 1, "data": 1}  # check_inputs' checks; lm-eval's start-up hook skips its own
    assert not getattr(plugin._state, "checked", False)  # plain lm_eval runs after it check again
