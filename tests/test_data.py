"Loading WikiText (local files, the hub path with a stand-in, bad input) and packing."
import pytest
import torch

from cl_course import config, data
from cl_course.data import Article, load_wikitext, make_task_stream, split_articles
from cl_course.blocks import pack_blocks, task_datasets


def test_local_folder_file_and_env_agree(wikitext_dir, monkeypatch):
    from_folder = load_wikitext(str(wikitext_dir), split="test")
    from_file = load_wikitext(str(wikitext_dir / "wiki.test.raw"))
    monkeypatch.setenv("CL_COURSE_DATA", str(wikitext_dir))
    from_env = load_wikitext("wikitext-103-raw-v1", split="test", max_articles=7)
    assert len(from_folder) == 60 and from_folder == from_file
    assert from_env == from_folder[:7]


def test_crlf_and_tokenised_variants(tmp_path, wikitext_dir):
    raw = (wikitext_dir / "wiki.test.raw").read_text(encoding="utf-8")
    (tmp_path / "wiki.test.tokens").write_bytes(raw.replace("\n", "\r\n").replace(" Boulter ", " <unk> ").encode())
    arts = load_wikitext(str(tmp_path), split="test")
    assert len(arts) == 60 and "<unk>" in arts[0].text and "\r" not in arts[0].text


def test_hub_path_is_tried_first_and_gives_the_local_structure(monkeypatch, wikitext_dir):
    "Without CL_COURSE_DATA a hub name goes to the hub; a stand-in hub serving the same text gives the same articles."
    monkeypatch.delenv("CL_COURSE_DATA", raising=False)
    lines = (wikitext_dir / "wiki.test.raw").read_text(encoding="utf-8").splitlines(keepends=True)
    calls = []

    def fake_hub(config, split, max_articles):
        calls.append((config, split, max_articles))
        # the hub's rows: one line each, with the blank separator lines of the original format
        return [x for l in lines for x in (l, "\n")]

    monkeypatch.setattr(data, "_hub_lines", fake_hub)
    hub = load_wikitext("wikitext-103-raw-v1", split="test", max_articles=5)
    assert calls == [("wikitext-103-raw-v1", "test", 5)]
    assert hub == load_wikitext(str(wikitext_dir), split="test", max_articles=5)


def test_offline_without_local_data_says_what_to_do(monkeypatch):
    monkeypatch.delenv("CL_COURSE_DATA", raising=False)
    monkeypatch.setattr(data, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(ConnectionError, match="CL_COURSE_DATA"):
        load_wikitext("wikitext-103-raw-v1", split="test", max_articles=2)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda d: load_wikitext("/does/not/exist"), FileNotFoundError, "does not exist"),
    (lambda d: load_wikitext(str(d), split="train"), FileNotFoundError, "No WikiText 'train' file"),
    (lambda d: split_articles([" just text \n", " = = Heading = = \n"]), ValueError, "no ' = Title = ' line"),
    (lambda d: split_articles([" = A = \n", " = B = \n", " Text . \n"]), ValueError, "'A' (line 1) is empty"),
    (lambda d: make_task_stream([Article("a", "x")] * 4, n_tasks=0), ValueError, "n_tasks must be >= 1"),
    (lambda d: make_task_stream([Article("a", "x")] * 4, n_tasks=5), ValueError, "too many"),
    (lambda d: make_task_stream([Article("a", "x"), Article("b", " ")], n_tasks=1), ValueError, "'b' is empty"),
    (lambda d: pack_blocks([1, 2, 3], block_size=1, pad_id=0), ValueError, "block_size must be >= 2"),
])
def test_bad_input(call, exc, msg, wikitext_dir):
    with pytest.raises(exc, match=msg.replace("(", r"\(").replace(")", r"\)")):
        call(wikitext_dir)


def test_file_without_titles(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\nworld\n")
    with pytest.raises(ValueError, match="notes.txt: no ' = Title = ' line"):
        load_wikitext(str(f))


def test_packing_never_puts_padding_in_the_loss():
    ids = list(range(1, 24))
    b = pack_blocks(ids, block_size=5, pad_id=0)
    real = b["attention_mask"].bool()
    assert b["input_ids"][real].tolist() == ids                # every token once, in order
    assert torch.equal(b["labels"] != -100, real)              # labels only where tokens are real
    # a loss over these labels with ignore_index never sees padding: recompute independently
    logits = torch.randn(*b["input_ids"].shape, 30)
    full = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 30), b["labels"][:, 1:].reshape(-1), reduction="sum")
    mask = real[:, 1:]
    manual = -torch.log_softmax(logits[:, :-1], -1).gather(-1, b["input_ids"][:, 1:, None]).squeeze(-1)[mask].sum()
    torch.testing.assert_close(full, manual)


def test_task_datasets_block_size_checks(wikitext_dir):
    from cl_course.models import load_tokenizer
    task = make_task_stream(load_wikitext(str(wikitext_dir), "test"), 4)[0]
    tok = load_tokenizer("gpt2")
    with pytest.raises(ValueError, match="larger than the model's context"):
        task_datasets(task, tok, block_size=300, context_length=256)
    tr, ev = task_datasets(task, tok, block_size=64, max_train_blocks=5)
    assert len(tr) == 5 and tr.n_tokens == 5 * 64
    assert not set(a.title for a in task.train) & set(a.title for a in task.eval)


def test_atomic_write_from_concurrent_writers(tmp_path):
    "Writers of one file at once (two notebooks or processes sharing a cache): none fails, the file is one writer's whole text."
    import threading
    target, barrier, errors = tmp_path / "shared.json", threading.Barrier(8), []
    def write(i):
        def body(tmp):
            tmp.write_text(str(i) * 1000)
            barrier.wait(timeout=10)   # every writer holds its temporary file before any renames it
        try: config.atomic_write(target, body)
        except Exception as e: errors.append(e)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors
    text = target.read_text()
    assert len(set(text)) == 1 and len(text) == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json"]   # no temporary file left
