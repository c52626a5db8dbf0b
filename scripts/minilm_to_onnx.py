#!/usr/bin/env python3
"""Builds an ONNX sentence encoder from a BERT-family sentence-transformers checkpoint
(all-MiniLM-L6-v2: model.safetensors + config.json), without torch.

The graph is written op by op with the `onnx` package from the weights read straight out of the
safetensors file (8-byte header length, JSON header, raw little-endian tensors):

  inputs  input_ids      int64 [batch, seq]
          attention_mask int64 [batch, seq]
  output  embedding      float [batch, hidden]   mean pooling over the mask, then L2-normalised

BERT as in the reference implementation: word + position + token-type(0) embeddings, LayerNorm,
N x (self-attention with the additive mask, dense, residual + LayerNorm, GELU (erf) feed-forward,
residual + LayerNorm). Opset 17 (LayerNormalization is a native op there).

Usage: minilm_to_onnx.py MODEL_DIR OUT.onnx [--int8 OUT_INT8.onnx] [--check]
  --int8   also writes a dynamically quantised (int8 weights) copy with onnxruntime's quantiser
  --check  compares the ONNX output (onnxruntime) with a numpy forward pass of the same weights
"""
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def read_safetensors(path):
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
        out[name] = arr.astype(np.float32) if arr.dtype == np.float16 else arr
    return out


def strip_prefix(w):
    # Some checkpoints prefix every name with "bert." or "0.auto_model.".
    for p in ("bert.", "0.auto_model.", "model."):
        if all(k.startswith(p) for k in w):
            return {k[len(p):]: v for k, v in w.items()}
    return w


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, kind, inputs, **attrs):
        self.n += 1
        out = f"{kind.lower()}_{self.n}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out


def build(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = strip_prefix(read_safetensors(os.path.join(model_dir, "model.safetensors")))
    return build_graph(w, cfg), w, cfg


def build_graph(w, cfg, producer="voxdesk minilm_to_onnx.py", center=None):
    """The graph for BERT weights `w` (Hugging Face names) and config `cfg` (hidden_size,
    num_attention_heads, num_hidden_layers, layer_norm_eps). Position ids count from 0.
    `center`: a vector subtracted from the unit-length output, which is then normalised again."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    g = Graph()

    def linear(x, prefix):
        wt = g.const(prefix + ".weight_t", w[prefix + ".weight"].T.astype(np.float32))
        return g.op("Add", [g.op("MatMul", [x, wt]), g.const(prefix + ".bias", w[prefix + ".bias"])])

    def layer_norm(x, prefix):
        return g.op("LayerNormalization",
                    [x, g.const(prefix + ".weight", w[prefix + ".weight"]), g.const(prefix + ".bias", w[prefix + ".bias"])],
                    axis=-1, epsilon=eps)

    # Embeddings.
    words = g.op("Gather", [g.const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"], axis=0)
    # The first `seq` rows of the position table (seq as a 1-D tensor: Shape(input_ids)[1:2]).
    seq = g.op("Shape", ["input_ids"], start=1, end=2)
    pos = g.op("Slice", [g.const("position_embeddings", w["embeddings.position_embeddings.weight"]),
                         g.const("zero_1d", np.array([0], dtype=np.int64)), seq,
                         g.const("axis0_1d", np.array([0], dtype=np.int64))])
    x = g.op("Add", [words, pos])
    x = g.op("Add", [x, g.const("token_type_0", w["embeddings.token_type_embeddings.weight"][0])])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive attention mask [batch, 1, 1, seq]: 0 where attended, -10000 where padded.
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    neg = g.op("Mul", [g.op("Sub", [g.const("one_f", np.array(1.0, dtype=np.float32)), mask_f]),
                       g.const("big_neg", np.array(-10000.0, dtype=np.float32))])
    add_mask = g.op("Unsqueeze", [neg, g.const("axes_1_2", np.array([1, 2], dtype=np.int64))])

    split_shape = g.const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = g.const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = g.const("scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    sqrt2 = g.const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    half = g.const("half", np.array(0.5, dtype=np.float32))
    one = "one_f"

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = g.op("Transpose", [g.op("Reshape", [linear(x, p + ".attention.self.query"), split_shape])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [linear(x, p + ".attention.self.key"), split_shape])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [linear(x, p + ".attention.self.value"), split_shape])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), add_mask])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(g.op("Add", [linear(ctx, p + ".attention.output.dense"), x]), p + ".attention.output.LayerNorm")
        h = linear(x, p + ".intermediate.dense")
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [g.op("Erf", [g.op("Div", [h, sqrt2])]), one])])
        x = layer_norm(g.op("Add", [linear(h, p + ".output.dense"), x]), p + ".output.LayerNorm")

    # Mean pooling over attended tokens, then L2 normalisation.
    m3 = g.op("Unsqueeze", [mask_f, g.const("axes_2", np.array([2], dtype=np.int64))])
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), g.const("axes_1", np.array([1], dtype=np.int64))], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [m3, "axes_1"], keepdims=0), g.const("tiny", np.array(1e-9, dtype=np.float32))])
    mean = g.op("Div", [summed, count])
    norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [mean, mean]), "axes_1"], keepdims=1)])
    norm = g.op("Max", [norm, g.const("tiny_norm", np.array(1e-12, dtype=np.float32))])
    if center is not None:
        # Unit length, minus the common direction, unit length again.
        v = g.op("Sub", [g.op("Div", [mean, norm]), g.const("center", np.asarray(center, dtype=np.float32))])
        n2 = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [v, v]), "axes_1"], keepdims=1)])
        mean, norm = v, g.op("Max", [n2, "tiny_norm"])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))

    graph = helper.make_graph(
        g.nodes, "sentence_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=producer)
    model.ir_version = 8
    return model


def numpy_forward(w, cfg, ids, mask):
    """Reference forward pass, written independently of the graph above."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = hidden // heads
    eps = cfg.get("layer_norm_eps", 1e-12)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    from math import erf
    verf = np.vectorize(erf)
    n = ids.shape[1]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x.astype(np.float64), "embeddings.LayerNorm")
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        def heads_of(t):
            return t.reshape(t.shape[0], n, heads, d).transpose(0, 2, 1, 3)
        q, k, v = (heads_of(lin(x, p + ".attention.self." + s)) for s in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        c = (s @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = ln(lin(c, p + ".attention.output.dense") + x, p + ".attention.output.LayerNorm")
        h = lin(x, p + ".intermediate.dense")
        h = 0.5 * h * (1.0 + verf(h / np.sqrt(2.0)))
        x = ln(lin(h, p + ".output.dense") + x, p + ".output.LayerNorm")
    e = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def check(path, w, cfg, name="minilm_to_onnx"):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    ids = rng.integers(1000, 29000, size=(2, 11)).astype(np.int64)
    ids[:, 0], ids[0, -1], ids[1, 7] = 101, 102, 102
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    ids[1, 8:] = 0
    got = sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    want = numpy_forward({k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in w.items()}, cfg, ids, mask.astype(np.float64))
    err = float(np.abs(got - want).max())
    print(f"{name}: {path}: max |onnx - numpy| = {err:.2e}")
    if err > 1e-4:
        sys.exit(f"{name}: the ONNX graph does not match the reference forward pass")


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    model_dir, out = args[0], args[1]
    int8 = args[args.index("--int8") + 1] if "--int8" in args else None
    model, w, cfg = build(model_dir)
    onnx.checker.check_model(model)
    onnx.save(model, out)
    print(f"minilm_to_onnx: wrote {out} ({os.path.getsize(out)} bytes, {len(model.graph.node)} nodes)")
    if "--check" in args:
        check(out, w, cfg)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(out, int8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])
        print(f"minilm_to_onnx: wrote {int8} ({os.path.getsize(int8)} bytes, int8 MatMul weights)")


if __name__ == "__main__":
    main()
