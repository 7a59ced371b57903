#!/usr/bin/python3
"""Makes Sluice's bundled tiny language model, model/sluice-tiny/.

Steps: synthetic corpus (make_corpus.py) -> byte-level BPE (bpe_tokenizer.py)
-> train a 4-layer GPT-2-style model (gpt.py) -> check that the KV-cache path
equals the full recompute -> export one ONNX file in Optimum's GPT-2
"with past" layout -> check the graph with onnx.checker and with a small
numpy interpreter (onnx_numpy.py) -> write config.json, tokenizer.json,
generation_config.json and reference.json (greedy continuations for tests).

Run from the repository root (Debian packages python3-torch, python3-onnx,
python3-regex, libopenblas0-pthread):

    OMP_NUM_THREADS=1 /usr/bin/python3 model/tools/train.py

Benchmark-only variant (random weights, distilgpt2's shape, never committed):

    OMP_NUM_THREADS=1 /usr/bin/python3 model/tools/train.py --random-distilgpt2 /tmp/distilgpt2-random
"""

import os


def _fix_openblas_core():
    """Some VMs report a CPU model OpenBLAS does not know, and it then falls
    back to its slow generic ('Prescott') kernels.  Pick the kernel family
    from the CPU flags unless the caller chose one.  Must run before torch
    loads OpenBLAS."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = set()
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_fix_openblas_core()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe_tokenizer  # noqa: E402
import gpt  # noqa: E402
import make_corpus  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "sluice-tiny"))

SETTINGS = dict(
    seed=1234,
    corpus_docs=12000,       # ~1.25M tokens of synthetic text
    val_docs=300,            # held out (the last documents)
    tokenizer_docs=5000,     # BPE is learned on the first documents
    vocab_size=1024,         # 256 bytes + 767 merges + <|endoftext|>
    n_layer=4, n_head=4, n_embd=160, n_positions=256,
    steps=960, batch_size=4, block_size=256,
    lr=3e-3, min_lr=2e-4, warmup_steps=40, weight_decay=0.1,
    betas=(0.9, 0.95), grad_clip=1.0,
    opset=14,
)

PROMPTS = [
    "The lock keeper",
    "In the morning, the river",
    "The queue held",
    "The sluice gate at Fenby",
    "\"The water is rising,\" said",
    "A producer sent",
    "The Heron carried",
    "It rained for three days and",
    "The market at Greyford",
    "The consumer read the next message",
    "Letters from",
    "The weir at Millbrook is",
    "At dawn, the keeper",
    "The boats passed",
    "Every message",
    "Nobody could remember",
    "The Lock at Oakham\n\n",
    "The miller watched the level and",
    "The Queue\n\n",
    "A Day on the Wend\n\n",
    "Notes from Upwell\n\n",
    "High Water\n\n",
    "The Keeper's Book\n\n",
    "The Mill at Saltash\n\nThe sluice gate at Saltash controls the water for the mill.",
    "The market at Oakham is held every Monday. Oakham has a mill, an inn and a stone bridge.",
    "A worker took a batch of ten requests from the queue. The worker read the message, did the work and sent the answer.",
]
NEW_TOKENS = 32
MIN_MARGIN = 0.02  # top-1 minus top-2 logit, every step, for kept prompts


def log(msg):
    print(msg, flush=True)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------

def build_data(s):
    t0 = time.time()
    docs = make_corpus.make_corpus(s["corpus_docs"], s["seed"])
    log("corpus: %d docs, %d chars, %d grammar entries (%.1fs)"
        % (len(docs), sum(map(len, docs)), make_corpus.count_templates(),
           time.time() - t0))
    t0 = time.time()
    merges = bpe_tokenizer.train_bpe(docs[:s["tokenizer_docs"]],
                                     s["vocab_size"])
    tok = bpe_tokenizer.ByteLevelBPE(merges)
    log("tokenizer: vocab %d, <|endoftext|> = %d (%.1fs)"
        % (tok.vocab_size, tok.eot_id, time.time() - t0))

    def stream(ds):
        out = []
        for d in ds:
            out.append(tok.eot_id)
            out.extend(tok.encode(d))
        return torch.tensor(out, dtype=torch.long)

    train = stream(docs[:-s["val_docs"]])
    val = stream(docs[-s["val_docs"]:])
    log("tokens: train %d, val %d" % (len(train), len(val)))
    return tok, train, val


def batches(data, bs, block, gen):
    while True:
        ix = torch.randint(len(data) - block - 1, (bs,), generator=gen)
        x = torch.stack([data[i:i + block + 1] for i in ix])
        yield x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(model, data, block, max_windows=40):
    model.eval()
    losses = []
    n = min(max_windows, (len(data) - 1) // block)
    for w in range(n):
        chunk = data[w * block:(w + 1) * block + 1].unsqueeze(0)
        logits, _ = model(chunk[:, :-1])
        losses.append(F.cross_entropy(logits[0], chunk[0, 1:]).item())
    model.train()
    return sum(losses) / len(losses)


def train(model, train_data, val_data, s):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=s["lr"], betas=s["betas"])
    gen = torch.Generator().manual_seed(s["seed"])
    it = batches(train_data, s["batch_size"], s["block_size"], gen)
    model.train()
    t0 = time.time()
    history = []
    smooth = None
    for step in range(s["steps"]):
        if step < s["warmup_steps"]:
            lr = s["lr"] * (step + 1) / s["warmup_steps"]
        else:
            p = (step - s["warmup_steps"]) / max(1, s["steps"] - s["warmup_steps"])
            lr = s["min_lr"] + 0.5 * (s["lr"] - s["min_lr"]) * (1 + math.cos(math.pi * p))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = next(it)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        opt.step()
        smooth = loss.item() if smooth is None else 0.9 * smooth + 0.1 * loss.item()
        if step % 20 == 0 or step == s["steps"] - 1:
            log("step %4d  loss %.4f  (smoothed %.4f)  lr %.2e  %.0fs"
                % (step, loss.item(), smooth, lr, time.time() - t0))
            history.append((step, round(loss.item(), 4)))
    train_time = time.time() - t0
    val_loss = evaluate(model, val_data, s["block_size"])
    log("trained %d steps in %.1fs; last loss %.4f, smoothed %.4f, val loss %.4f"
        % (s["steps"], train_time, loss.item(), smooth, val_loss))
    return dict(train_seconds=round(train_time, 1),
                final_train_loss=round(loss.item(), 4),
                final_train_loss_smoothed=round(smooth, 4),
                val_loss=round(val_loss, 4), history=history)


# --------------------------------------------------------------------------
# generation and references
# --------------------------------------------------------------------------

def _margin(logits_row):
    top = torch.topk(logits_row, 2)
    return (top.values[0] - top.values[1]).item()


@torch.no_grad()
def greedy_cached(model, ids, eot_id, n_new=NEW_TOKENS):
    """Incremental decoding: prefill with an empty past, then one token per
    step.  Returns (new ids, margins, stopped_at_eot, first-step top5)."""
    model.eval()
    cfg = model.cfg
    x = torch.tensor([ids], dtype=torch.long)
    past = [(torch.zeros(1, cfg.n_head, 0, cfg.head_dim),
             torch.zeros(1, cfg.n_head, 0, cfg.head_dim))
            for _ in range(cfg.n_layer)]
    mask = torch.ones(1, len(ids), dtype=torch.long)
    pos = torch.arange(len(ids)).unsqueeze(0)
    out, margins, top5 = [], [], None
    for _ in range(n_new):
        logits, past = model(x, mask, pos, past)
        last = logits[0, -1]
        if top5 is None:
            t = torch.topk(last, 5)
            top5 = [[int(i), round(float(v), 6)] for v, i in zip(t.values, t.indices)]
        nxt = int(torch.argmax(last))
        margins.append(_margin(last))
        out.append(nxt)
        if nxt == eot_id:
            return out, margins, True, top5
        x = torch.tensor([[nxt]], dtype=torch.long)
        p = mask.size(1)
        mask = torch.ones(1, p + 1, dtype=torch.long)
        pos = torch.tensor([[p]], dtype=torch.long)
    return out, margins, False, top5


@torch.no_grad()
def greedy_full(model, ids, n_new, eot_id):
    """No cache: recompute the whole sequence each step (the check)."""
    model.eval()
    seq = list(ids)
    out, last_logits = [], []
    for _ in range(n_new):
        logits, _ = model(torch.tensor([seq], dtype=torch.long))
        nxt = int(torch.argmax(logits[0, -1]))
        last_logits.append(logits[0, -1])
        out.append(nxt)
        seq.append(nxt)
        if nxt == eot_id:
            break
    return out, last_logits


@torch.no_grad()
def greedy_left_padded(model, prompts_ids, pad_id, n_new):
    """Batched greedy decoding with left padding and a KV cache."""
    model.eval()
    cfg = model.cfg
    b = len(prompts_ids)
    width = max(len(p) for p in prompts_ids)
    ids = [[pad_id] * (width - len(p)) + p for p in prompts_ids]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts_ids]
    # Hugging Face's convention: cumsum(mask) - 1, pads get 1 (ignored).
    pos = [[(sum(m[:j + 1]) - 1) if m[j] else 1 for j in range(width)]
           for m in mask]
    first = dict(input_ids=ids, attention_mask=mask, position_ids=pos)
    x = torch.tensor(ids)
    am = torch.tensor(mask)
    ps = torch.tensor(pos)
    past = [(torch.zeros(b, cfg.n_head, 0, cfg.head_dim),
             torch.zeros(b, cfg.n_head, 0, cfg.head_dim))
            for _ in range(cfg.n_layer)]
    next_pos = torch.tensor([len(p) for p in prompts_ids])
    out = [[] for _ in range(b)]
    margins = [[] for _ in range(b)]
    for _ in range(n_new):
        logits, past = model(x, am, ps, past)
        last = logits[:, -1]
        nxt = torch.argmax(last, dim=-1)
        for r in range(b):
            out[r].append(int(nxt[r]))
            margins[r].append(_margin(last[r]))
        x = nxt.unsqueeze(1)
        am = torch.cat([am, torch.ones(b, 1, dtype=torch.long)], dim=1)
        ps = next_pos.unsqueeze(1).clone()
        next_pos = next_pos + 1
    return first, out, margins


def make_reference(model, tok, min_margin):
    eot = tok.eot_id
    cases = []
    for prompt in PROMPTS:
        ids = tok.encode(prompt)
        new, margins, stopped, top5 = greedy_cached(model, ids, eot)
        full, full_logits = greedy_full(model, ids, len(new), eot)
        assert full == new, "KV cache and full recompute disagree on %r" % prompt
        case = dict(prompt=prompt, prompt_ids=ids, greedy_ids=new,
                    greedy_text=tok.decode(new), stopped_at_eos=stopped,
                    min_margin=round(min(margins), 4),
                    margins=[round(m, 4) for m in margins],
                    first_step_top5=top5)
        log("  %-38r min margin %.3f -> %r"
            % (prompt, min(margins), case["greedy_text"]))
        cases.append(case)
    kept = [c for c in cases if c["min_margin"] > min_margin]
    dropped = [c["prompt"] for c in cases if c["min_margin"] <= min_margin]
    if len(kept) < 4:
        raise SystemExit("only %d prompts have all margins > %s" % (len(kept), min_margin))
    if dropped:
        log("dropped (near-tie argmax): %r" % dropped)

    # left padding: three kept prompts of different lengths, taken from those
    # with long continuations
    longer = [c for c in kept if len(c["greedy_ids"]) >= 16] or kept
    by_len = sorted(longer, key=lambda c: len(c["prompt_ids"]))
    picks = [by_len[0], by_len[len(by_len) // 2], by_len[-1]]
    first, out, margins = greedy_left_padded(
        model, [c["prompt_ids"] for c in picks], eot, NEW_TOKENS)
    for c, row in zip(picks, out):
        # rows that stop at <|endoftext|> are compared up to that point
        n = len(c["greedy_ids"])
        assert row[:n] == c["greedy_ids"], "left padding changed %r" % c["prompt"]
    n_cmp = [len(c["greedy_ids"]) for c in picks]
    left = dict(
        description=("Batch of %d prompts, left-padded with pad_token_id; "
                     "step 1 feeds input_ids/attention_mask/position_ids below "
                     "with empty past tensors [batch, n_head, 0, head_dim]; each "
                     "later step feeds the argmax token of every row, appends 1 "
                     "to attention_mask and uses position_ids = last position + 1 "
                     "per row. greedy_ids[r] equals the unpadded greedy_ids of "
                     "prompts[r] (compare the first compare_len ids)." % len(picks)),
        prompts=[c["prompt"] for c in picks],
        pad_token_id=eot,
        input_ids=first["input_ids"],
        attention_mask=first["attention_mask"],
        position_ids=first["position_ids"],
        greedy_ids=out,
        compare_len=n_cmp,
        min_margin=[round(min(m[:n]), 4) for m, n in zip(margins, n_cmp)],
    )
    log("left padding check: %d rows reproduce the unpadded greedy ids" % len(picks))
    return dict(
        description=("Greedy continuations of the PyTorch model with incremental "
                     "KV-cache decoding: prefill with past_seq = 0, then one token "
                     "per step; position_ids = 0..n-1; attention_mask all ones. "
                     "margins[i] = top-1 minus top-2 logit at step i; only prompts "
                     "with every margin > %s are kept. Generation stops early only "
                     "at <|endoftext|> (stopped_at_eos)." % min_margin),
        eos_token_id=eot,
        max_new_tokens=NEW_TOKENS,
        cases=kept,
        left_padding=left,
    )


# --------------------------------------------------------------------------
# export and config files
# --------------------------------------------------------------------------

def compact_json(obj, indent=0):
    """JSON with objects one key per line and lists of numbers on one line."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict):
        items = ["%s%s: %s" % (pad, json.dumps(k), compact_json(v, indent + 1))
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        items = [pad + compact_json(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj, ensure_ascii=False)


def check_onnx(model, path, cases):
    import onnx
    import onnx_numpy
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = sorted({n.op_type for n in m.graph.node})
    log("onnx.checker ok; opset %d; %d nodes; ops: %s"
        % (m.opset_import[0].version, len(m.graph.node), " ".join(ops)))
    worst = onnx_numpy.compare_with_torch(m, model, cases, log)
    return ops, worst


def write_configs(out_dir, cfg, tok_path_or_obj, eot):
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_embd": cfg.n_embd,
        "n_positions": cfg.n_positions,
        "n_ctx": cfg.n_positions,
        "n_inner": None,
        "vocab_size": cfg.vocab_size,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "initializer_range": 0.02,
        "attn_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.0,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": "float32",
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    gen = {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot,
           "do_sample": False, "max_length": cfg.n_positions}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    tok_cfg = {"tokenizer_class": "GPT2Tokenizer",
               "model_max_length": cfg.n_positions,
               "add_prefix_space": False,
               "bos_token": bpe_tokenizer.EOT, "eos_token": bpe_tokenizer.EOT,
               "unk_token": bpe_tokenizer.EOT}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
        f.write("\n")
    dst = os.path.join(out_dir, "tokenizer.json")
    if isinstance(tok_path_or_obj, str):
        if os.path.abspath(tok_path_or_obj) != os.path.abspath(dst):
            shutil.copyfile(tok_path_or_obj, dst)
    else:
        tok_path_or_obj.save(dst)


def random_distilgpt2(out_dir, opset):
    """distilgpt2's shape with random weights, same ONNX layout; no training."""
    os.makedirs(out_dir, exist_ok=True)
    seed_all(SETTINGS["seed"])
    cfg = gpt.Config(vocab_size=50257, n_positions=1024, n_embd=768,
                     n_layer=6, n_head=12)
    model = gpt.GPT(cfg)
    log("random distilgpt2-shaped model: %d parameters" % model.num_params())
    path = os.path.join(out_dir, "model.onnx")
    t0 = time.time()
    gpt.export_onnx(model, path, opset)
    log("exported %s (%.1f MB, %.1fs)"
        % (path, os.path.getsize(path) / 1e6, time.time() - t0))
    import onnx
    onnx.checker.check_model(path)  # by path: the file is over 100 MB
    tiny_tok = os.path.join(DEFAULT_OUT, "tokenizer.json")
    if os.path.exists(tiny_tok):
        tok = tiny_tok
    else:
        docs = make_corpus.make_corpus(SETTINGS["tokenizer_docs"], SETTINGS["seed"])
        tok = bpe_tokenizer.ByteLevelBPE(
            bpe_tokenizer.train_bpe(docs, SETTINGS["vocab_size"]))
    # The tokenizer covers ids < 1024 only; the model still has 50257 logits.
    write_configs(out_dir, cfg, tok, eot=50256)
    log("wrote %s (eos/bos id 50256 is outside the small tokenizer's vocab; "
        "benchmarks should stop on length, not on EOS)" % out_dir)


def main():
    ap = argparse.ArgumentParser(description="Make model/sluice-tiny.")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--steps", type=int, default=SETTINGS["steps"])
    ap.add_argument("--random-distilgpt2", metavar="OUTDIR",
                    help="only export a random distilgpt2-shaped model there")
    ap.add_argument("--min-margin", type=float, default=MIN_MARGIN,
                    help="keep prompts whose top-1/top-2 logit gap is above this")
    ap.add_argument("--save-checkpoint", metavar="PATH",
                    help="also save the PyTorch state dict (not shipped)")
    ap.add_argument("--load-checkpoint", metavar="PATH",
                    help="skip training and use this state dict")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    log("torch %s, threads %d, OPENBLAS_CORETYPE=%s"
        % (torch.__version__, torch.get_num_threads(),
           os.environ.get("OPENBLAS_CORETYPE", "(auto)")))
    if args.random_distilgpt2:
        random_distilgpt2(args.random_distilgpt2, SETTINGS["opset"])
        return

    s = dict(SETTINGS, steps=args.steps)
    t_start = time.time()
    seed_all(s["seed"])
    tok, train_data, val_data = build_data(s)
    os.makedirs(args.out, exist_ok=True)

    seed_all(s["seed"])
    cfg = gpt.Config(tok.vocab_size, s["n_positions"], s["n_embd"],
                     s["n_layer"], s["n_head"])
    model = gpt.GPT(cfg)
    log("model: %d parameters" % model.num_params())
    if args.load_checkpoint:
        model.load_state_dict(torch.load(args.load_checkpoint))
        stats = dict(note="loaded from checkpoint")
    else:
        stats = train(model, train_data, val_data, s)
    if args.save_checkpoint:
        torch.save(model.state_dict(), args.save_checkpoint)
    model.eval()

    log("reference continuations (KV cache, checked against full recompute):")
    ref = make_reference(model, tok, args.min_margin)

    path = os.path.join(args.out, "model.onnx")
    gpt.export_onnx(model, path, s["opset"])
    ops, worst = check_onnx(model, path, ref)
    write_configs(args.out, cfg, tok, tok.eot_id)
    ref["model"] = dict(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                        head_dim=cfg.head_dim, n_positions=cfg.n_positions,
                        vocab_size=cfg.vocab_size, opset=s["opset"])
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        f.write(compact_json(ref) + "\n")
    sizes = {n: os.path.getsize(os.path.join(args.out, n))
             for n in sorted(os.listdir(args.out))}
    summary = dict(settings=s, parameters=model.num_params(),
                   tokens_train=len(train_data), tokens_val=len(val_data),
                   onnx_ops=ops, onnx_vs_torch_max_abs_diff=worst,
                   total_seconds=round(time.time() - t_start, 1),
                   files=sizes, **stats)
    log(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
