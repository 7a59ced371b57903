"""A GPT-2-style decoder-only transformer with a KV cache, and its ONNX export.

Layout follows GPT-2: learned token and position embeddings, pre-LayerNorm
blocks (causal self-attention, then a gelu_new MLP of width 4*n_embd), a
final LayerNorm and an LM head tied to the token embedding.  Linear layers
store their weight as [in, out] like GPT-2's Conv1D, so the exported graph
is plain MatMul + Add.

The ONNX graph has the inputs and outputs of a Hugging Face Optimum GPT-2
"decoder with past" export (one file, no use_cache_branch input):

    input_ids                 int64   [batch, seq]
    attention_mask            int64   [batch, past_seq + seq]
    position_ids              int64   [batch, seq]
    past_key_values.{i}.key   float32 [batch, n_head, past_seq, head_dim]
    past_key_values.{i}.value float32 [batch, n_head, past_seq, head_dim]
  ->
    logits                    float32 [batch, seq, vocab]
    present.{i}.key           float32 [batch, n_head, past_seq + seq, head_dim]
    present.{i}.value         float32 [batch, n_head, past_seq + seq, head_dim]

Query t (0-based within this call) may attend to key j when
j <= past_seq + t and attention_mask[b, j] != 0.  A query whose keys are all
masked (a left-padding position) gets a uniform attention row, not NaN.
"""

import math

import torch
import torch.nn as nn


class Config:
    def __init__(self, vocab_size, n_positions=256, n_embd=160, n_layer=4,
                 n_head=4, layer_norm_epsilon=1e-5):
        self.vocab_size = vocab_size
        self.n_positions = n_positions
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_head = n_head
        self.layer_norm_epsilon = layer_norm_epsilon

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(
        math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.head_dim = cfg.head_dim
        self.n_embd = cfg.n_embd
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)
        # score of a masked key (finite, so an all-masked row is uniform)
        self.register_buffer("mask_value",
                             torch.tensor(torch.finfo(torch.float32).min),
                             persistent=False)

    def _heads(self, x, b, t):
        return x.reshape(b, t, self.n_head, self.head_dim).transpose(1, 2)

    def forward(self, x, mask, past_k, past_v):
        b, t = x.size(0), x.size(1)
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = self._heads(q, b, t), self._heads(k, b, t), self._heads(v, b, t)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        q = q * (1.0 / math.sqrt(self.head_dim))
        att = torch.matmul(q, k.transpose(-1, -2))
        att = torch.where(mask, att, self.mask_value)
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, self.n_embd)
        return self.c_proj(y), k, v


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = Conv1D(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x, mask, past_k, past_v):
        a, k, v = self.attn(self.ln_1(x), mask, past_k, past_v)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, k, v


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        for blk in self.h:  # GPT-2's scaled init of residual projections
            for proj in (blk.attn.c_proj, blk.mlp.c_proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, input_ids, attention_mask=None, position_ids=None,
                past=None):
        """past: list of (key, value) per layer or None.

        Returns (logits, presents) with presents a list of (key, value).
        """
        b, t = input_ids.size(0), input_ids.size(1)
        if attention_mask is None:
            past_len = 0 if past is None else past[0][0].size(2)
            attention_mask = torch.ones(b, past_len + t, dtype=torch.long)
        if position_ids is None:
            past_len = attention_mask.size(1) - t
            position_ids = (torch.arange(t) + past_len).unsqueeze(0).expand(b, t)
        total = attention_mask.size(1)
        q_pos = torch.arange(t) + (total - t)
        k_pos = torch.arange(total)
        causal = k_pos.unsqueeze(0) <= q_pos.unsqueeze(1)          # [t, total]
        mask = causal.unsqueeze(0).unsqueeze(0) & \
            (attention_mask > 0).unsqueeze(1).unsqueeze(2)         # [b,1,t,total]
        x = self.wte(input_ids) + self.wpe(position_ids)
        presents = []
        for i, blk in enumerate(self.h):
            pk, pv = (None, None) if past is None else past[i]
            x, k, v = blk(x, mask, pk, pv)
            presents.append((k, v))
        x = self.ln_f(x)
        logits = torch.matmul(x, self.wte.weight.t())
        return logits, presents


class OnnxWrapper(nn.Module):
    """Flat signature for torch.onnx.export (Optimum's names)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1])
                for i in range(len(past_flat) // 2)]
        logits, presents = self.model(input_ids, attention_mask, position_ids,
                                      past)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


def io_names(n_layer):
    inputs = ["input_ids", "attention_mask", "position_ids"]
    outputs = ["logits"]
    for i in range(n_layer):
        inputs += ["past_key_values.%d.key" % i, "past_key_values.%d.value" % i]
        outputs += ["present.%d.key" % i, "present.%d.value" % i]
    return inputs, outputs


def export_onnx(model, path, opset=14):
    cfg = model.cfg
    model.eval()
    b, t, past = 2, 3, 4  # dummy sizes, all distinct; every axis is dynamic
    ids = torch.randint(0, cfg.vocab_size, (b, t), dtype=torch.long)
    mask = torch.ones(b, past + t, dtype=torch.long)
    pos = (torch.arange(t) + past).unsqueeze(0).expand(b, t).contiguous()
    pkv = []
    for _ in range(cfg.n_layer):
        pkv += [torch.randn(b, cfg.n_head, past, cfg.head_dim),
                torch.randn(b, cfg.n_head, past, cfg.head_dim)]
    inputs, outputs = io_names(cfg.n_layer)
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size",
                               1: "past_sequence_length + sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    for name in inputs[3:]:
        axes[name] = {0: "batch_size", 2: "past_sequence_length"}
    for name in outputs[1:]:
        axes[name] = {0: "batch_size",
                      2: "past_sequence_length + sequence_length"}
    with torch.no_grad():
        torch.onnx.export(OnnxWrapper(model), tuple([ids, mask, pos] + pkv),
                          path, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True)
