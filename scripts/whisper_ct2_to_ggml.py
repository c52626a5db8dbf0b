#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper model (faster-whisper's model.bin) to whisper.cpp's ggml file.

Reads the CTranslate2 binary layout (version 6: a name, then each variable as name, shape,
dtype, bytes; then aliases), renames the variables to the names whisper.cpp expects (the
PyTorch checkpoint's), splits CTranslate2's fused attention projections back into query / key /
value, and writes the ggml file the way whisper.cpp's convert-pt-to-ggml.py does: hyper-
parameters, the 80-bin mel filter bank, the BPE vocabulary (from OpenAI's tiktoken file), then
the tensors. With --q8_0 the 2-D weight matrices are quantised to ggml's Q8_0 (blocks of 32
int8 values with one fp16 scale), as whisper.cpp's quantize tool does.

Usage: whisper_ct2_to_ggml.py MODEL.bin MEL_FILTERS.npz VOCAB.tiktoken OUT.bin [--q8_0]
Needs numpy only.
"""
import base64
import re
import struct
import sys

import numpy as np

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
GGML_MAGIC = 0x67676D6C
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
FTYPE_F16, FTYPE_Q8_0 = 1, 2 * 1000 + 7  # GGML_QNT_VERSION 2 * factor 1000 + MOSTLY_Q8_0
KEEP_F32 = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding"}


def read_ct2(path):
    """Returns {name: ndarray} of a CTranslate2 model.bin, aliases resolved."""
    with open(path, "rb") as f:
        def u(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))

        def s():
            (n,) = u("H")
            return f.read(n)[:-1].decode()

        (version,) = u("I")
        if version != 6:
            sys.exit(f"{path}: CTranslate2 binary version {version}, this converter reads version 6")
        spec = s()
        if spec != "WhisperSpec":
            sys.exit(f"{path}: a {spec}, not a Whisper model")
        u("I")  # spec revision
        (count,) = u("I")
        out = {}
        for _ in range(count):
            name = s()
            (nd,) = u("B")
            shape = u("I" * nd)
            (dtype,) = u("B")
            (nbytes,) = u("I")
            raw = f.read(nbytes)
            if dtype not in CT2_DTYPES:
                continue  # bfloat16 scalars etc. are not used by whisper.cpp
            out[name] = np.frombuffer(raw, dtype=CT2_DTYPES[dtype]).reshape(shape)
        (aliases,) = u("I")
        for _ in range(aliases):
            alias, target = s(), s()
            out[alias] = out[target]
    return out


def rename(ct2):
    """CTranslate2 names -> whisper.cpp (PyTorch) names, fused projections split."""
    t = {}
    t["encoder.conv1.weight"] = ct2["encoder/conv1/weight"]
    t["encoder.conv1.bias"] = ct2["encoder/conv1/bias"]
    t["encoder.conv2.weight"] = ct2["encoder/conv2/weight"]
    t["encoder.conv2.bias"] = ct2["encoder/conv2/bias"]
    t["encoder.positional_embedding"] = ct2["encoder/position_encodings/encodings"]
    t["decoder.token_embedding.weight"] = ct2["decoder/embeddings/weight"]
    t["decoder.positional_embedding"] = ct2["decoder/position_encodings/encodings"]

    def ln(dst, src):
        t[dst + ".weight"] = ct2[src + "/gamma"]
        t[dst + ".bias"] = ct2[src + "/beta"]

    def lin(dst, src, bias=True):
        t[dst + ".weight"] = ct2[src + "/weight"]
        if bias:
            t[dst + ".bias"] = ct2[src + "/bias"]

    def split(dst_names, src, parts):
        w = np.split(ct2[src + "/weight"], parts, axis=0)
        b = np.split(ct2[src + "/bias"], parts, axis=0)
        for name, wi, bi in zip(dst_names, w, b):
            t[name + ".weight"] = wi
            if not name.endswith(".key"):  # Whisper's key projections have no bias
                t[name + ".bias"] = bi

    layers = lambda side: sorted({int(m.group(1)) for k in ct2 if (m := re.match(side + r"/layer_(\d+)/", k))})
    for i in layers("encoder"):
        s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        split([d + ".attn.query", d + ".attn.key", d + ".attn.value"], s + "/self_attention/linear_0", 3)
        lin(d + ".attn.out", s + "/self_attention/linear_1")
        ln(d + ".attn_ln", s + "/self_attention/layer_norm")
        lin(d + ".mlp.0", s + "/ffn/linear_0")
        lin(d + ".mlp.2", s + "/ffn/linear_1")
        ln(d + ".mlp_ln", s + "/ffn/layer_norm")
    ln("encoder.ln_post", "encoder/layer_norm")
    for i in layers("decoder"):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        split([d + ".attn.query", d + ".attn.key", d + ".attn.value"], s + "/self_attention/linear_0", 3)
        lin(d + ".attn.out", s + "/self_attention/linear_1")
        ln(d + ".attn_ln", s + "/self_attention/layer_norm")
        lin(d + ".cross_attn.query", s + "/attention/linear_0")
        split([d + ".cross_attn.key", d + ".cross_attn.value"], s + "/attention/linear_1", 2)
        lin(d + ".cross_attn.out", s + "/attention/linear_2")
        ln(d + ".cross_attn_ln", s + "/attention/layer_norm")
        lin(d + ".mlp.0", s + "/ffn/linear_0")
        lin(d + ".mlp.2", s + "/ffn/linear_1")
        ln(d + ".mlp_ln", s + "/ffn/layer_norm")
    ln("decoder.ln", "decoder/layer_norm")
    return t, len(layers("encoder")), len(layers("decoder"))


def q8_0(data):
    """ggml Q8_0: per block of 32 values, an fp16 scale (amax / 127) then 32 int8."""
    x = data.astype(np.float32).reshape(-1, 32)
    d = np.abs(x).max(axis=1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
    q = np.round(x * inv[:, None]).astype(np.int8)
    blocks = np.empty(x.shape[0], dtype=[("d", "<f2"), ("qs", "i1", 32)])
    blocks["d"] = d.astype(np.float16)
    blocks["qs"] = q
    return blocks.tobytes()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quant = "--q8_0" in sys.argv
    if len(args) != 4:
        sys.exit(__doc__)
    model, mel, vocab, out = args
    ct2 = read_ct2(model)
    tensors, n_audio_layer, n_text_layer = rename(ct2)
    n_vocab, n_text_state = tensors["decoder.token_embedding.weight"].shape
    n_audio_ctx, n_audio_state = tensors["encoder.positional_embedding"].shape
    n_text_ctx = tensors["decoder.positional_embedding"].shape[0]
    n_mels = tensors["encoder.conv1.weight"].shape[1]
    n_audio_head = int(ct2["encoder/num_heads"]) if "encoder/num_heads" in ct2 else n_audio_state // 64
    n_text_head = int(ct2["decoder/num_heads"]) if "decoder/num_heads" in ct2 else n_text_state // 64
    filters = np.load(mel)[f"mel_{n_mels}"]
    with open(vocab, "rb") as f:
        tokens = [base64.b64decode(tok) for tok, _rank in (line.split() for line in f.read().splitlines() if line)]

    with open(out + ".part", "wb") as f:
        hp = [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
              n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, FTYPE_Q8_0 if quant else FTYPE_F16]
        f.write(struct.pack("<i", GGML_MAGIC))
        f.write(struct.pack("<" + "i" * len(hp), *hp))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for tok in tokens:
            f.write(struct.pack("<i", len(tok)))
            f.write(tok)
        for name, data in tensors.items():
            data = np.asarray(data)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(data.shape[0], 1)
            if data.ndim < 2 or name in KEEP_F32:
                ttype, raw = GGML_F32, data.astype("<f4").tobytes()
            elif quant and data.ndim == 2 and data.shape[-1] % 32 == 0:
                ttype, raw = GGML_Q8_0, q8_0(data)
            else:
                ttype, raw = GGML_F16, data.astype("<f2").tobytes()
            key = name.encode()
            f.write(struct.pack("<iii", data.ndim, len(key), ttype))
            f.write(struct.pack("<" + "i" * data.ndim, *reversed(data.shape)))
            f.write(key)
            f.write(raw)
    import os
    os.replace(out + ".part", out)
    print(f"whisper_ct2_to_ggml: {out}: {n_audio_layer}+{n_text_layer} layers, width {n_text_state}, "
          f"vocab {n_vocab}, {'q8_0' if quant else 'f16'}, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
