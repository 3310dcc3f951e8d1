"""`mmsearch align`: learn a shared text-image space from the catalog itself.

The image and text encoders stay frozen; their stored vectors of each product's
(image, text) pairs are mapped into one space by two small projection heads trained
with the CLIP contrastive loss (open_clip's ClipLoss, learnable temperature).

Two things make the heads fit what they are used for. Queries are short (a title, a
phrase), while a product's stored text vector covers its title and every attribute:
so each training pair's text side is, at random, either that stored vector or the
vector of the title alone (encoded here with the store's text model). And the image
head also reads colour and layout features of the image file (colour.py), which the
pooled ImageNet vector hardly keeps while titles name colours.

A seeded hold-out of products is never trained on; title -> image recall on it is
reported beside the zero-shot bridge's recall on the same pairs, so the gain is
measured, not assumed.
The heads are saved as safetensors (never pickle) and recorded in the store manifest;
`mmsearch index` then rebuilds the parts that depend on them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import colour
from .bridge import AlignedBridge, ZeroShotBridge
from .encoders import configured_torch, encoder_family, load_encoder
from .errors import MMSearchError
from .items import StoreItems
from .store import Store, write_atomic


@dataclass
class AlignConfig:
    dim: int = 256
    hidden: int = 512
    epochs: int = 40
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0
    #: chance that a training pair's text side is the title alone, not the product text
    title_share: float = 0.5
    #: whether the image head also reads colour features of the image files
    colour: bool = True


@dataclass
class AlignReport:
    pairs_train: int
    pairs_val: int
    seconds: float
    val: dict[str, float]  # trained heads: text->image recall@1/@10 on held-out pairs
    zeroshot_val: dict[str, float]  # the zero-shot bridge on the same pairs
    file: str


@dataclass
class Pairs:
    """Every product's images, row for row with its text sides."""

    ids: list[str]
    paths: list[Path]
    images: np.ndarray
    texts: np.ndarray  # the stored product text vectors
    titles: list[str]


def _pairs(store: Store) -> Pairs:
    items = StoreItems(store)
    if "image" not in items.models or "text" not in items.models:
        raise MMSearchError("align needs image and text vectors: run `mmsearch embed` first")
    images, _ = items.kept_items("image")
    texts = {pid: item for pid, *item in items.kept_items("text")[0]}
    images = [item for item in images if item[0] in texts]
    if len(images) < 20:
        raise MMSearchError(f"align needs at least 20 products with an image and text, the store has {len(images)}")
    text_items = [(pid, *texts[pid]) for pid, _, _ in images]
    return Pairs(
        [pid for pid, _, _ in images],
        [Path(path) for _, path, _ in images],
        items.vectors("image", images),
        items.vectors("text", text_items),
        [str(items.catalog[pid].get("title") or "") for pid, _, _ in images],
    )


def _title_vectors(store: Store, pairs: Pairs, progress: Any) -> np.ndarray:
    """The text model's vector of each pair's title alone (the product text's vector where
    a product has no title); each distinct title is encoded once."""
    distinct = sorted({title for title in pairs.titles if title})
    task = progress.add_task("align: titles", total=None) if progress else None
    encoder = load_encoder("text", store.manifest()["models"]["text"]["name"])
    encoded = dict(zip(distinct, encoder.encode(distinct))) if distinct else {}
    if progress:
        progress.update(task, completed=1, total=1)
    return np.stack([encoded[t] if t else v for t, v in zip(pairs.titles, pairs.texts)]).astype(np.float32)


def _split(ids: list[str], fraction: float, seed: int) -> np.ndarray:
    """Held-out mask by a seeded hash of the product id (all of a product's images on
    the same side, and the same split on every run)."""
    def unit(pid: str) -> float:
        return int(hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    return np.array([unit(pid) < fraction for pid in ids])


def recall_at(text_side: np.ndarray, image_side: np.ndarray, ids: list[str], ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Text -> image known-item recall: each product's text (its title) against every held-out
    image; a hit is any image of the same product within the top k."""
    first = {}
    for row, pid in enumerate(ids):
        first.setdefault(pid, row)
    queries = np.array(list(first.values()))
    sims = text_side[queries] @ image_side.T
    order = np.argsort(-sims, axis=1)
    id_array = np.array(ids)
    hits = id_array[order] == id_array[queries][:, None]
    return {f"recall@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}


class ProjectionHead(torch.nn.Module):
    """Two-layer MLP from a frozen encoder's space into the shared space (applied
    without torch by bridge.AlignedBridge, from this module's state dict). With
    ``extra_dim``, features beside the vector (colour.py's) are centred on their
    training mean, normalised and appended to the normalised vector."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, extra_dim: int = 0):
        super().__init__()
        self.extra_dim = extra_dim
        if extra_dim:
            self.register_buffer("extra_mean", torch.zeros(extra_dim))
        self.net = torch.nn.Sequential(torch.nn.Linear(dim_in + extra_dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim_out))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.nn.functional.normalize(x, dim=-1)
        if self.extra_dim:
            x = torch.cat([x, torch.nn.functional.normalize(extra - self.extra_mean, dim=-1)], dim=-1)
        return torch.nn.functional.normalize(self.net(x), dim=-1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}


def train(store: Store, cfg: AlignConfig = AlignConfig(), progress: Any = None) -> tuple[AlignedBridge, AlignReport]:
    from open_clip.loss import ClipLoss

    pairs = _pairs(store)
    ids, image_vectors, text_vectors = pairs.ids, pairs.images, pairs.texts
    val_mask = _split(ids, cfg.val_fraction, cfg.seed)
    if val_mask.all() or not val_mask.any():
        raise MMSearchError("the catalog is too small to hold out a validation part: lower or raise --val-fraction")
    title_vectors = _title_vectors(store, pairs, progress)
    extras = colour.colour_matrix(pairs.paths) if cfg.colour else np.zeros((len(ids), 0), np.float32)
    configured_torch()  # an explicit thread count: torch's default pools oversubscribe a small machine
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    image_head = ProjectionHead(image_vectors.shape[1], cfg.hidden, cfg.dim, extras.shape[1])
    text_head = ProjectionHead(text_vectors.shape[1], cfg.hidden, cfg.dim)
    if cfg.colour:
        image_head.extra_mean.copy_(torch.from_numpy(extras[~val_mask].mean(axis=0)))
    logit_scale = torch.nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
    params = [*image_head.parameters(), *text_head.parameters(), logit_scale]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_img = torch.from_numpy(image_vectors[~val_mask])
    x_extra = torch.from_numpy(extras[~val_mask])
    x_txt = torch.from_numpy(text_vectors[~val_mask])
    x_title = torch.from_numpy(title_vectors[~val_mask])
    steps_per_epoch = max(1, len(x_img) // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    loss_fn = ClipLoss()
    task = progress.add_task("align", total=cfg.epochs) if progress else None
    started = time.perf_counter()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x_img), generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            title = (torch.rand(len(batch), generator=generator) < cfg.title_share)[:, None]
            texts = torch.where(title, x_title[batch], x_txt[batch])
            loss = loss_fn(image_head(x_img[batch], x_extra[batch]), text_head(texts), logit_scale.exp().clamp(max=100))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        if progress:
            progress.advance(task)
    seconds = time.perf_counter() - started
    meta = {
        "image_dim": str(image_vectors.shape[1]),
        "text_dim": str(text_vectors.shape[1]),
        "hidden": str(cfg.hidden),
        "dim": str(cfg.dim),
        **_model_ids(store),
        "seed": str(cfg.seed),
        "pairs_train": str(int((~val_mask).sum())),
        **({"image_extra": colour.VERSION} if cfg.colour else {}),
    }
    bridge = AlignedBridge({"image": image_head.arrays(), "text": text_head.arrays()}, meta, "aligned:unsaved")
    val_ids = [pid for pid, held in zip(ids, val_mask) if held]
    val_paths = [path for path, held in zip(pairs.paths, val_mask) if held]
    val_images = bridge.image_items(image_vectors[val_mask], val_paths)
    val = recall_at(bridge.text_items([], title_vectors[val_mask]), val_images, val_ids)
    bridge.metadata["val"] = json.dumps(val)
    zeroshot = _zeroshot_recall(store, image_vectors[val_mask], title_vectors[val_mask], val_ids)
    report = AlignReport(int((~val_mask).sum()), int(val_mask.sum()), seconds, val, zeroshot, "")
    return bridge, report


def _zeroshot_recall(store: Store, images: np.ndarray, texts: np.ndarray, ids: list[str]) -> dict[str, float]:
    models = store.manifest()["models"]
    if not encoder_family("image", models["image"]["name"]).classifier:
        return {}  # no ImageNet head: no zero-shot bridge to compare with
    bridge = ZeroShotBridge.build(load_encoder("image", models["image"]["name"]), load_encoder("text", models["text"]["name"]))
    return recall_at(bridge.text_items([], texts), bridge.image_items(images), ids)


def _model_ids(store: Store) -> dict[str, str]:
    models = store.manifest()["models"]
    return {"image_model": models["image"]["id"], "text_model": models["text"]["id"]}


def install(store: Store, bridge: AlignedBridge) -> Path:
    """Make freshly trained heads the store's alignment."""
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        return _install_file(store, bridge.save(Path(tmp))[0], bridge.metadata)


def _install_file(store: Store, source: Path, metadata: dict[str, str]) -> Path:
    """Copy a heads file into the store (aside, then renamed in) and record it."""
    path = store.root / AlignedBridge.FILE
    data = source.read_bytes()
    write_atomic(path, data)
    manifest = store.manifest()
    manifest["alignment"] = {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "image_model": metadata["image_model"],
        "text_model": metadata["text_model"],
        "val": json.loads(metadata.get("val", "{}")),
    }
    store.write_manifest(manifest)
    return path


def load(store: Store, source: Path) -> AlignedBridge:
    """Install heads trained on another store, after checking they fit this one."""
    if not source.is_file():
        raise MMSearchError(f"alignment file {source} not found")
    try:
        bridge = AlignedBridge.from_file(source)
    except MMSearchError:
        raise
    except Exception as exc:  # safetensors raises several types on a bad file
        raise MMSearchError(f"{source} is not an mmsearch alignment file ({exc})") from None
    mine = _model_ids(store)
    for key, value in mine.items():
        if bridge.metadata.get(key) != value:
            raise MMSearchError(
                f"{source} was trained for {key.replace('_', ' ')} {bridge.metadata.get(key)!r}, "
                f"this store uses {value!r}: train one here with `mmsearch align`"
            )
    _install_file(store, source, bridge.metadata)
    return bridge


def save_copy(store: Store, target: Path) -> None:
    alignment = store.manifest().get("alignment")
    if not alignment:
        raise MMSearchError("this store has no alignment to save: run `mmsearch align` first")
    shutil.copyfile(store.root / alignment["file"], target)
