"""A tiny numpy interpreter for the ONNX ops our export uses.

onnxruntime has no Debian package, so this runs the exported graph itself
(with the graph's own shapes and constants, nothing taken from PyTorch) to
check what a runtime will compute: dynamic axes, empty past tensors
(past_seq = 0), left padding and a whole greedy decode.
"""

import numpy as np
from onnx import numpy_helper, helper

_DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_,
           10: np.float16, 11: np.float64}


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        q = np.abs(a) // np.abs(b)
        return (np.sign(a) * np.sign(b) * q).astype(a.dtype)
    return (a / b).astype(a.dtype)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _reshape(x, shape, allowzero=0):
    shape = [int(s) for s in shape]
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        sl[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(sl)]


def _split(x, split, axis, n_out):
    if split is None:
        split = [x.shape[axis] // n_out] * n_out
    idx = np.cumsum(split)[:-1]
    return np.split(x, idx, axis=axis)


def run(model, feeds):
    """Runs the graph; returns {output name: array}."""
    g = model.graph
    env = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    env.update(feeds)
    for node in g.node:
        a = _attrs(node)
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Constant":
            y = numpy_helper.to_array(a["value"])
        elif op == "Identity":
            y = x[0]
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "Sub":
            y = x[0] - x[1]
        elif op == "Mul":
            y = x[0] * x[1]
        elif op == "Div":
            y = _div(x[0], x[1])
        elif op == "Pow":
            y = np.power(x[0], x[1]).astype(x[0].dtype)
        elif op == "Sqrt":
            y = np.sqrt(x[0])
        elif op == "Tanh":
            y = np.tanh(x[0])
        elif op == "Erf":
            import math
            y = np.vectorize(math.erf)(x[0]).astype(x[0].dtype)
        elif op == "Neg":
            y = -x[0]
        elif op == "MatMul":
            y = np.matmul(x[0], x[1])
        elif op == "Gemm":
            A = x[0].T if a.get("transA") else x[0]
            B = x[1].T if a.get("transB") else x[1]
            y = a.get("alpha", 1.0) * A @ B
            if len(x) > 2 and x[2] is not None:
                y = y + a.get("beta", 1.0) * x[2]
        elif op == "Softmax":
            y = _softmax(x[0], a.get("axis", -1))
        elif op == "ReduceMean":
            axes = a.get("axes", None if len(x) < 2 or x[1] is None else x[1])
            y = np.mean(x[0], axis=tuple(int(i) for i in axes),
                        keepdims=bool(a.get("keepdims", 1)))
        elif op == "Shape":
            y = np.array(x[0].shape, dtype=np.int64)
        elif op == "Gather":
            y = np.take(x[0], x[1], axis=a.get("axis", 0))
        elif op == "Unsqueeze":
            axes = a.get("axes", x[1] if len(x) > 1 else None)
            y = x[0]
            out_rank = y.ndim + len(axes)
            for ax in sorted(int(i) % out_rank for i in axes):
                y = np.expand_dims(y, ax)
        elif op == "Squeeze":
            axes = a.get("axes", x[1] if len(x) > 1 else None)
            y = np.squeeze(x[0], axis=None if axes is None
                           else tuple(int(i) for i in axes))
        elif op == "Concat":
            y = np.concatenate(x, axis=a["axis"])
        elif op == "Reshape":
            y = _reshape(x[0], x[1], a.get("allowzero", 0))
        elif op == "Transpose":
            y = np.transpose(x[0], a.get("perm"))
        elif op == "Split":
            split = a.get("split", x[1] if len(x) > 1 else None)
            y = _split(x[0], split, a.get("axis", 0), len(node.output))
        elif op == "Slice":
            y = _slice(x[0], x[1], x[2], *(x[3:5] + [None] * (5 - len(x))))
        elif op == "Where":
            y = np.where(x[0], x[1], x[2])
        elif op == "Cast":
            y = x[0].astype(_DTYPES[a["to"]])
        elif op == "Range":
            y = np.arange(x[0], x[1], x[2]).astype(x[0].dtype)
        elif op == "Expand":
            y = x[0] * np.ones([int(s) for s in x[1]], dtype=x[0].dtype)
        elif op == "ConstantOfShape":
            v = numpy_helper.to_array(a["value"]) if "value" in a \
                else np.zeros(1, np.float32)
            y = np.full([int(s) for s in x[0]], v[0], dtype=v.dtype)
        elif op in ("LessOrEqual", "Less", "Greater", "GreaterOrEqual",
                    "Equal"):
            f = {"LessOrEqual": np.less_equal, "Less": np.less,
                 "Greater": np.greater, "GreaterOrEqual": np.greater_equal,
                 "Equal": np.equal}[op]
            y = f(x[0], x[1])
        elif op == "And":
            y = np.logical_and(x[0], x[1])
        elif op == "Not":
            y = np.logical_not(x[0])
        else:
            raise NotImplementedError(op)
        outs = y if op == "Split" else [y]
        for name, val in zip(node.output, outs):
            env[name] = np.asarray(val)
    return {o.name: env[o.name] for o in g.output}


def _empty_past(cfg, b):
    feeds = {}
    for i in range(cfg.n_layer):
        for kind in ("key", "value"):
            feeds["past_key_values.%d.%s" % (i, kind)] = np.zeros(
                (b, cfg.n_head, 0, cfg.head_dim), np.float32)
    return feeds


def _past_from(outs, cfg):
    return {"past_key_values.%d.%s" % (i, kind): outs["present.%d.%s" % (i, kind)]
            for i in range(cfg.n_layer) for kind in ("key", "value")}


def compare_with_torch(model_onnx, model, ref, log):
    """Checks the graph against the PyTorch model; returns max |diff|."""
    import torch
    cfg = model.cfg
    worst = 0.0

    def torch_step(feeds):
        past = [(torch.from_numpy(feeds["past_key_values.%d.key" % i]),
                 torch.from_numpy(feeds["past_key_values.%d.value" % i]))
                for i in range(cfg.n_layer)]
        with torch.no_grad():
            logits, presents = model(torch.from_numpy(feeds["input_ids"]),
                                     torch.from_numpy(feeds["attention_mask"]),
                                     torch.from_numpy(feeds["position_ids"]),
                                     past)
        out = {"logits": logits.numpy()}
        for i, (k, v) in enumerate(presents):
            out["present.%d.key" % i] = k.numpy()
            out["present.%d.value" % i] = v.numpy()
        return out

    def check(feeds, what, rows=None):
        nonlocal worst
        got = run(model_onnx, feeds)
        want = torch_step(feeds)
        for name, w in want.items():
            g = got[name]
            assert g.shape == w.shape, (what, name, g.shape, w.shape)
            assert g.dtype == np.float32, (what, name, g.dtype)
            if rows is not None and name == "logits":  # ignore pad queries
                g, w = g[rows], w[rows]
            d = float(np.max(np.abs(g - w))) if g.size else 0.0
            worst = max(worst, d)
            assert d < 1e-3, (what, name, d)
        return got

    # 1. prefill with empty past, then one decode step
    case = ref["cases"][0]
    ids = np.array([case["prompt_ids"]], np.int64)
    n = ids.shape[1]
    feeds = dict(input_ids=ids, attention_mask=np.ones((1, n), np.int64),
                 position_ids=np.arange(n, dtype=np.int64)[None],
                 **_empty_past(cfg, 1))
    outs = check(feeds, "prefill past=0")
    feeds = dict(input_ids=np.array([[case["greedy_ids"][0]]], np.int64),
                 attention_mask=np.ones((1, n + 1), np.int64),
                 position_ids=np.array([[n]], np.int64),
                 **_past_from(outs, cfg))
    check(feeds, "decode past=%d" % n)

    # 2. left-padded batch: prefill and one step (pad query rows ignored)
    lp = ref["left_padding"]
    am = np.array(lp["attention_mask"], np.int64)
    feeds = dict(input_ids=np.array(lp["input_ids"], np.int64),
                 attention_mask=am,
                 position_ids=np.array(lp["position_ids"], np.int64),
                 **_empty_past(cfg, am.shape[0]))
    got = run(model_onnx, feeds)
    want = torch_step(feeds)
    real = am.astype(bool)
    d = float(np.max(np.abs(got["logits"][real] - want["logits"][real])))
    assert d < 1e-3 and np.isfinite(got["logits"]).all(), d
    worst = max(worst, d)

    # 3. every reference case and the padded batch, decoded greedily by the
    #    graph alone, must give the recorded ids
    for case in ref["cases"]:
        seq = run_greedy(model_onnx, cfg, [case["prompt_ids"]],
                         len(case["greedy_ids"]))
        assert seq[0] == case["greedy_ids"], (case["prompt"], seq)
    rows = run_greedy_padded(model_onnx, cfg, lp, ref["max_new_tokens"])
    assert rows == lp["greedy_ids"], rows
    log("numpy run of the ONNX graph: matches PyTorch (max |diff| %.2e), "
        "past_seq=0 prefill ok, left padding ok, all %d greedy references "
        "reproduced" % (worst, len(ref["cases"])))
    return worst


def run_greedy(model_onnx, cfg, prompts, n_new):
    ids = np.array(prompts, np.int64)
    b, n = ids.shape
    feeds = dict(input_ids=ids, attention_mask=np.ones((b, n), np.int64),
                 position_ids=np.tile(np.arange(n, dtype=np.int64), (b, 1)),
                 **_empty_past(cfg, b))
    out = [[] for _ in range(b)]
    for step in range(n_new):
        o = run(model_onnx, feeds)
        nxt = o["logits"][:, -1].argmax(-1)
        for r in range(b):
            out[r].append(int(nxt[r]))
        total = n + step + 1
        feeds = dict(input_ids=nxt[:, None].astype(np.int64),
                     attention_mask=np.ones((b, total), np.int64),
                     position_ids=np.full((b, 1), total - 1, np.int64),
                     **_past_from(o, cfg))
    return out


def run_greedy_padded(model_onnx, cfg, lp, n_new):
    am = np.array(lp["attention_mask"], np.int64)
    b = am.shape[0]
    feeds = dict(input_ids=np.array(lp["input_ids"], np.int64),
                 attention_mask=am,
                 position_ids=np.array(lp["position_ids"], np.int64),
                 **_empty_past(cfg, b))
    next_pos = am.sum(1)
    out = [[] for _ in range(b)]
    for _ in range(n_new):
        o = run(model_onnx, feeds)
        nxt = o["logits"][:, -1].argmax(-1)
        for r in range(b):
            out[r].append(int(nxt[r]))
        am = np.concatenate([am, np.ones((b, 1), np.int64)], axis=1)
        feeds = dict(input_ids=nxt[:, None].astype(np.int64), attention_mask=am,
                     position_ids=next_pos[:, None].astype(np.int64),
                     **_past_from(o, cfg))
        next_pos = next_pos + 1
    return out
