"Experience replay: the reservoir is uniform, batches are mixed as asked, state survives a checkpoint; bad input."
import pytest
import torch

from cl_course.baselines import ExperienceReplay
from cl_course.stream import load_checkpoint, save_checkpoint


class Loader(list):
    "Batches plus a `.dataset.blocks`, like the course's DataLoaders."
    def __init__(self, ids, batch_size=4):
        blocks = {"input_ids": ids[:, None].repeat(1, 3), "attention_mask": torch.ones(len(ids), 3, dtype=torch.long)}
        blocks["labels"] = blocks["input_ids"].clone()
        super().__init__({k: v[i:i + batch_size] for k, v in blocks.items()} for i in range(0, len(ids), batch_size))
        self.dataset = type("D", (), {"blocks": blocks})()


def test_reservoir_is_uniform_over_tasks_of_different_sizes():
    sizes, m, trials = [5, 20, 15], 8, 3000
    counts = torch.zeros(sum(sizes))
    for seed in range(trials):
        er, start = ExperienceReplay(memory_size=m, seed=seed), 0
        for t, n in enumerate(sizes):
            er.after_task(None, t, Loader(torch.arange(start, start + n)))
            start += n
        assert len(er.memory["input_ids"]) == m
        counts[er.memory["input_ids"][:, 0]] += 1
    p = counts / trials
    assert torch.allclose(p, torch.full_like(p, m / sum(sizes)), atol=0.04)


def test_batches_mix_the_requested_fraction_from_memory():
    er = ExperienceReplay(memory_size=10, mix=0.25)
    first = Loader(torch.arange(100, 110))
    er.after_task(None, 0, first)
    for batch in er.batches(Loader(torch.arange(8)), task_id=1):
        ids = batch["input_ids"][:, 0]
        assert len(ids) == 4 + round(4 * 0.25 / 0.75)
        assert (ids[:4] < 8).all() and (ids[4:] >= 100).all()
        assert batch["labels"].shape == batch["input_ids"].shape


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    er = ExperienceReplay(memory_size=6, seed=3)
    er.after_task(None, 0, Loader(torch.arange(9)))
    save_checkpoint(tmp_path / "c.pt", {"method": er.state_dict()})
    other = ExperienceReplay(memory_size=6, seed=3)
    other.load_state_dict(load_checkpoint(tmp_path / "c.pt")["method"], None)
    assert other.n_seen == 9 and torch.equal(other.memory["input_ids"], er.memory["input_ids"])
    er.after_task(None, 1, Loader(torch.arange(20, 30)))
    other.after_task(None, 1, Loader(torch.arange(20, 30)))
    assert torch.equal(other.memory["input_ids"], er.memory["input_ids"])


@pytest.mark.parametrize("kw, msg", [(dict(memory_size=-1), "memory_size"), (dict(memory_size=2.5), "memory_size"),
                                     (dict(mix=1.0), "mix"), (dict(mix=-0.1), "mix")])
def test_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        ExperienceReplay(**kw)
