"""Generate the demo shop in sample_data/: a catalog, its pictures and sounds, and queries.

Everything is synthesized here (Pillow drawings, numpy waveforms) from fixed seeds, so the
demo data needs no download, carries no licence question, and running the script twice
gives byte-identical files: a diff in sample_data/ always means the generator changed.

    python scripts/make_sample_data.py            # writes <repo>/sample_data
    python scripts/make_sample_data.py --out DIR  # writes DIR instead

`zh/` holds a second, mixed-language catalog: the same shop with eight Chinese and
bilingual products added, and Chinese, English and cross-language queries. It is kept
apart so that the main catalog stays English-only (and keeps its default models).

Only numpy, Pillow and soundfile are used, so the script runs without mmsearch installed.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter

SEED = 20240611
REPO = Path(__file__).resolve().parent.parent

GRID = 128  # shapes are designed on a 128 x 128 grid ...
SUPERSAMPLE = 4  # ... drawn 4x larger and scaled down, which anti-aliases every edge
QUERY_IMAGE_SIZE = 112
SAMPLE_RATE = 16_000

# The files this script writes; a rerun deletes exactly these before writing them again.
OWNED_FILES = ("products.csv", "queries.csv", "qrels.csv", "README.md", "zh/products.csv", "zh/queries.csv", "zh/qrels.csv")
OWNED_GLOBS = ("images/p*.png", "audio/p*.wav", "queries/q_*.png", "queries/q_*.wav")

PRODUCT_COLUMNS = (
    "id", "title", "description", "category", "brand", "price", "image", "audio", "color", "material")

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Item:
    """One product: its CSV fields plus how to draw it and how it sounds."""

    id: str
    category: str
    brand: str
    price: str
    color: str  # a key of COLORS, also written to the `color` column
    material: str
    title: str
    description: str
    shape: str  # a key of SHAPES
    pattern: str = "plain"  # a key of PATTERNS
    sound: str = ""  # a key of SOUNDS; "" for products that make no sound
    back: bool = False  # whether a second picture (the back) is listed
    color_name: str = ""  # the `color` column's value when it is not ``color`` (a Chinese name)


COLORS: dict[str, RGB] = {
    "red": (200, 38, 42),
    "blue": (40, 92, 178),
    "light blue": (120, 180, 226),
    "navy": (28, 40, 88),
    "green": (54, 132, 74),
    "yellow": (246, 204, 52),
    "orange": (240, 128, 30),
    "pink": (236, 130, 170),
    "white": (244, 244, 240),
    "grey": (130, 134, 140),
    "black": (36, 36, 40),
    "silver": (188, 190, 196),
    "brass": (200, 160, 60),
    "natural": (204, 164, 112),
    "walnut": (112, 72, 44),
}

CATALOG: tuple[Item, ...] = (
    Item("p001", "Mugs", "Brewhaus", "12.99", "red", "ceramic",
         title="Red ceramic coffee mug", shape="mug",
         description="Classic 350 ml coffee mug in a glossy red glaze with a comfortable handle. "
         "Dishwasher and microwave safe."),
    Item("p002", "Mugs", "TrailCraft", "14.50", "blue", "enamel steel",
         title="Blue enamel camping mug", shape="mug", pattern="speckles",
         description="Lightweight speckled enamel mug for camping, hiking and the garden. "
         "Rolled steel rim that survives campfires and drops."),
    Item("p003", "Mugs", "Brewhaus", "9.99", "white", "porcelain",
         title="White porcelain espresso cup with saucer", shape="cup",
         description="Thick-walled 90 ml espresso cup that keeps a double shot hot, "
         "sold with a matching saucer."),
    Item("p004", "Mugs", "TrailCraft", "24.95", "black", "stainless steel",
         title="Black insulated travel mug with lid", shape="travel_mug",
         description="Double-wall vacuum travel mug, 450 ml, keeps coffee hot for six hours. "
         "Leak-proof sliding lid that fits car cup holders."),
    Item("p005", "Mugs", "Hearth & Loom", "16.00", "green", "stoneware",
         title="Green striped stoneware mug", shape="mug", pattern="stripes", back=True,
         description="Hand-glazed stoneware mug with cream stripes, 400 ml. "
         "Heavy, rustic and made for slow tea mornings."),
    Item("p006", "T-Shirts", "Threadline", "19.99", "red", "cotton",
         title="Red cotton crew-neck t-shirt", shape="tshirt",
         description="Everyday crew-neck tee in soft combed cotton. Regular fit, pre-shrunk, "
         "unisex sizes XS to XXL."),
    Item("p007", "T-Shirts", "Threadline", "24.99", "navy", "cotton",
         title="Navy striped Breton t-shirt", shape="tshirt", pattern="stripes", back=True,
         description="Sailor-style Breton top with white horizontal stripes. Heavy cotton jersey "
         "that keeps its shape wash after wash."),
    Item("p008", "T-Shirts", "Sunny Days", "22.00", "yellow", "organic cotton",
         title="Yellow graphic tee with sun print", shape="tshirt", pattern="sun",
         description="Bright yellow organic cotton t-shirt with a hand-drawn orange sun "
         "printed on the chest."),
    Item("p009", "T-Shirts", "TrailCraft", "49.00", "grey", "merino wool",
         title="Grey merino wool running t-shirt", shape="tshirt",
         description="Breathable, odour-resistant merino base layer for running and hiking. "
         "Flatlock seams prevent chafing."),
    Item("p010", "T-Shirts", "Hearth & Loom", "34.50", "white", "linen",
         title="White linen V-neck t-shirt", shape="vneck_tshirt",
         description="Relaxed V-neck tee in airy washed linen, cool on hot summer days."),
    Item("p011", "T-Shirts", "Sunny Days", "15.99", "light blue", "cotton",
         title="Light blue polka dot t-shirt for kids", shape="tshirt", pattern="dots",
         description="Playful children's tee covered in white polka dots. Soft cotton with a "
         "tag-free neck, ages 3 to 10."),
    Item("p012", "Lamps", "Hearth & Loom", "59.00", "natural", "oak wood",
         title="Wooden desk lamp with linen shade", shape="desk_lamp", pattern="grain",
         description="Turned solid oak desk lamp with a cream linen shade. Warm light for "
         "reading, E27 bulb, inline switch."),
    Item("p013", "Lamps", "Lumio", "39.99", "black", "aluminium",
         title="Black adjustable LED desk lamp", shape="arm_lamp",
         description="Architect-style LED task lamp with a two-joint arm, five brightness "
         "levels and a flicker-free light panel."),
    Item("p014", "Lamps", "Lumio", "74.00", "brass", "brass",
         title="Brass bedside table lamp", shape="table_lamp",
         description="Polished brass base with a round ivory drum shade. Touch dimmer with "
         "three levels for the bedside table."),
    Item("p015", "Lamps", "Sunny Days", "18.99", "pink", "silicone",
         title="Pink mushroom night light for kids", shape="mushroom_lamp", pattern="dots",
         description="Soft silicone mushroom night light with a gentle warm glow. "
         "Rechargeable, tap to switch on, auto-off timer."),
    Item("p016", "Lamps", "Lumio", "129.00", "white", "steel and beech",
         title="White tripod floor lamp", shape="floor_lamp",
         description="Tall floor lamp on three beech wood legs with a white cone shade. "
         "Ideal beside a sofa or reading chair."),
    Item("p017", "Lamps", "Lumio", "89.00", "blue", "glass",
         title="Blue glass pendant lamp", shape="pendant_lamp",
         description="Hand-blown cobalt glass dome pendant for kitchen islands and dining "
         "tables. Adjustable 150 cm cord."),
    Item("p018", "Doorbells", "Chimeco", "29.99", "white", "plastic",
         title="Wireless doorbell with 3 chimes", shape="chime_box", sound="ding_dong",
         description="Wireless doorbell kit: weatherproof push button and a battery chime "
         "unit with three selectable chimes. 150 m range."),
    Item("p019", "Doorbells", "Chimeco", "119.00", "black", "plastic",
         title="Video doorbell with HD camera", shape="video_doorbell", sound="beep_melody",
         back=True,
         description="Smart video doorbell with 1080p camera, night vision, motion alerts and "
         "two-way talk from your phone."),
    Item("p020", "Doorbells", "Hearth & Loom", "45.00", "brass", "brass",
         title="Brass ship's bell door chime", shape="ship_bell", sound="brass_bell",
         description="Wall-mounted solid brass bell with a pull rope. A loud, clear ring for "
         "the front gate, a boat or the garden."),
    Item("p021", "Doorbells", "Chimeco", "34.99", "grey", "plastic",
         title="Plug-in doorbell with Westminster melody", shape="plug_in_chime",
         sound="westminster",
         description="Plug-in wireless chime receiver that plays the classic Westminster "
         "melody. Volume control, pairs with any Chimeco button."),
    Item("p022", "Doorbells", "Chimeco", "12.50", "silver", "stainless steel",
         title="Brushed steel doorbell push button", shape="push_button", pattern="brushed",
         description="Wired doorbell push with a brushed stainless steel plate. Replacement "
         "button for an existing wired bell, no chime included."),
    Item("p023", "Speakers", "Boomly", "45.00", "orange", "rubber",
         title="Waterproof portable Bluetooth speaker", shape="portable_speaker",
         sound="pop_loop",
         description="Rugged IPX7 Bluetooth speaker with two drivers, 12 hours of play and a "
         "strap for bikes and backpacks."),
    Item("p024", "Speakers", "Boomly", "89.00", "grey", "fabric",
         title="Smart speaker with voice assistant", shape="smart_speaker", pattern="fabric",
         sound="wake_arpeggio",
         description="Fabric-covered smart speaker with 360 degree sound, a light ring and "
         "hands-free voice control for music and timers."),
    Item("p025", "Speakers", "Acoustik", "149.00", "walnut", "wood",
         title="Walnut bookshelf speakers, pair", shape="box_speaker", pattern="grain",
         sound="mellow_chords", back=True,
         description="Passive two-way bookshelf speakers in real walnut veneer with a 5-inch "
         "woofer and a silk dome tweeter."),
    Item("p026", "Clocks", "Tempo", "21.99", "white", "plastic",
         title="Digital alarm clock with loud beeper", shape="digital_clock", sound="beeper",
         description="Bedside digital alarm clock with a large red LED display, snooze button "
         "and an extra-loud beeping alarm for heavy sleepers."),
    Item("p027", "Clocks", "Tempo", "39.00", "natural", "oak wood",
         title="Wooden ticking wall clock", shape="wall_clock", pattern="grain",
         sound="tick_tock",
         description="Round solid oak wall clock with a cream face and a classic, audible "
         "tick-tock quartz movement."),
    Item("p028", "Clocks", "Tempo", "18.50", "red", "metal",
         title="Red twin-bell alarm clock", shape="twin_bell_clock", sound="bell_ring",
         description="Retro metal alarm clock with twin bells and a hammer that rings loudly. "
         "Luminous hands."),
    Item("p029", "Clocks", "Tempo", "27.00", "white", "plastic",
         title="Silent non-ticking wall clock", shape="dark_wall_clock",
         description="Minimalist wall clock with a black face and a sweep movement that makes "
         "no ticking sound, for bedrooms and offices."),
    Item("p030", "Clocks", "Tempo", "54.00", "black", "plastic",
         title="Black retro flip clock", shape="flip_clock",
         description="Mechanical flip-card desk clock with big white numbers that turn over "
         "every minute."),
)

# The mixed-language shop of zh/: CATALOG plus these Chinese and bilingual products.
ZH_CATALOG: tuple[Item, ...] = (
    Item("p031", "杯子", "Brewhaus", "12.99", "red", "陶瓷", color_name="红色",
         title="红色陶瓷咖啡杯", shape="mug",
         description="经典款350毫升咖啡杯，亮红色釉面，手柄握感舒适，可用洗碗机和微波炉。"),
    Item("p032", "门铃 Doorbells", "Chimeco", "32.00", "white", "塑料 plastic", color_name="白色 white",
         title="无线门铃 Wireless doorbell", shape="chime_box",
         description="无线门铃套装，防水按钮，一百米遥控距离。Wireless doorbell kit with a "
         "waterproof button and a 100 m range."),
    Item("p033", "连衣裙", "Sunny Days", "89.00", "red", "纯棉", color_name="红色",
         title="红色连衣裙女装夏季", shape="dress",
         description="夏季女装短袖连衣裙，纯棉面料，轻薄透气，收腰显瘦。"),
    Item("p034", "鞋", "Threadline", "199.00", "black", "真皮", color_name="黑色",
         title="男士黑色皮鞋", shape="shoe",
         description="商务正装皮鞋，头层牛皮，橡胶防滑鞋底，适合上班和婚礼。"),
    Item("p035", "挂钟", "Tempo", "45.00", "natural", "橡木", color_name="原木色",
         title="静音木质挂钟", shape="wall_clock", pattern="grain",
         description="实木圆形挂钟，扫秒机芯，走时无声，适合卧室和书房。"),
    Item("p036", "音箱", "Boomly", "59.00", "blue", "橡胶", color_name="蓝色",
         title="便携式蓝牙音箱 防水", shape="portable_speaker",
         description="户外防水蓝牙音箱，续航十二小时，可挂在自行车和背包上。"),
    Item("p037", "T恤 T-Shirts", "Threadline", "21.00", "pink", "纯棉 cotton", color_name="粉色 pink",
         title="粉色纯棉T恤 Pink cotton t-shirt", shape="tshirt",
         description="圆领短袖T恤，精梳棉，男女同款。Soft combed cotton crew-neck tee."),
    Item("p038", "杯子", "TrailCraft", "26.00", "black", "不锈钢", color_name="黑色",
         title="黑色保温杯 Black vacuum flask", shape="travel_mug",
         description="双层真空保温杯，500毫升，保温六小时，杯盖防漏。"),
)


@dataclass(frozen=True)
class Query:
    """One evaluation query. ``target`` is the product it is meant to find (relevance 2);
    ``related`` are clearly related products (relevance 1), the target's whole category
    when None. An image or audio query uses a variant of the target's own media."""

    id: str
    target: str
    text: str = ""
    image: bool = False
    audio: bool = False
    modality: str = ""
    related: tuple[str, ...] | None = None
    equal: tuple[str, ...] = ()  # as relevant as the target (the same product in another language)


QUERIES: tuple[Query, ...] = (
    Query("q01", "p001", text="red coffee mug"),
    Query("q02", "p018", text="wireless doorbell", related=("p019", "p021")),
    Query("q03", "p012", text="wooden desk lamp", related=("p013", "p014")),
    Query("q04", "p007", text="striped t-shirt"),
    Query("q05", "p023", text="waterproof bluetooth speaker"),
    Query("q06", "p029", text="clock that does not tick", modality="lexical,text"),
    Query("q07", "p001", image=True),
    Query("q08", "p007", image=True),
    Query("q09", "p014", image=True),
    Query("q10", "p023", image=True),
    Query("q11", "p027", image=True),
    Query("q12", "p018", audio=True),
    Query("q13", "p025", audio=True),
    Query("q14", "p026", audio=True),
    Query("q15", "p027", audio=True),
    Query("q16", "p002", text="blue enamel mug", image=True, modality="text,image"),
)

# zh/queries.csv: within Chinese (zh->zh), Chinese for English products (zh->en), English
# for Chinese products (en->zh), and mixed; each names its language pair in a comment.
ZH_QUERIES: tuple[Query, ...] = (
    Query("zq01", "p033", text="红色连衣裙", related=()),  # zh->zh
    Query("zq02", "p034", text="皮鞋", related=()),  # zh->zh
    Query("zq03", "p031", text="咖啡杯", equal=("p001",), related=("p002", "p003", "p004", "p005")),  # zh->both
    Query("zq04", "p032", text="门铃", related=("p018", "p019", "p020", "p021", "p022")),  # zh->both
    Query("zq05", "p026", text="闹钟", equal=("p028",), related=("p027", "p029", "p030", "p035")),  # zh->en
    Query("zq06", "p012", text="台灯", equal=("p013", "p014"), related=("p015", "p016", "p017")),  # zh->en
    Query("zq07", "p033", text="red summer dress", related=()),  # en->zh
    Query("zq08", "p034", text="black leather shoes for men", related=()),  # en->zh
    Query("zq09", "p035", text="silent wall clock", equal=("p029",), related=("p027",)),  # en->both
    Query("zq10", "p038", text="黑色 travel mug", equal=("p004",), related=()),  # mixed
)


def rng_for(tag: str) -> np.random.Generator:
    """A generator seeded from SEED and a name, so each picture or clip has its own stream
    and adding a product never changes the files of the others."""
    return np.random.default_rng([SEED, *tag.encode()])


# --------------------------------------------------------------------------- drawing


class Pen:
    """ImageDraw that takes coordinates on the 128-px GRID and draws on the supersampled
    canvas, so shapes are written in small, readable numbers yet come out anti-aliased."""

    def __init__(self, image: Image.Image) -> None:
        self._draw = ImageDraw.Draw(image)
        self._k = image.width / GRID

    def _xy(self, coords: Sequence[float]) -> list[float]:
        return [v * self._k for v in coords]

    def ellipse(self, box: Sequence[float], fill: object) -> None:
        self._draw.ellipse(self._xy(box), fill=fill)

    def ring(self, box: Sequence[float], fill: object, width: float) -> None:
        self._draw.ellipse(self._xy(box), outline=fill, width=max(1, round(width * self._k)))

    def rect(self, box: Sequence[float], fill: object, radius: float = 0) -> None:
        self._draw.rounded_rectangle(self._xy(box), radius=radius * self._k, fill=fill)

    def polygon(self, points: Sequence[float], fill: object) -> None:
        self._draw.polygon(self._xy(points), fill=fill)

    def line(self, points: Sequence[float], fill: object, width: float) -> None:
        self._draw.line(self._xy(points), fill=fill, width=max(1, round(width * self._k)), joint="curve")

    def pieslice(self, box: Sequence[float], start: float, end: float, fill: object) -> None:
        self._draw.pieslice(self._xy(box), start, end, fill=fill)

    def arc(self, box: Sequence[float], start: float, end: float, fill: object, width: float) -> None:
        self._draw.arc(self._xy(box), start, end, fill=fill, width=max(1, round(width * self._k)))


BODY, CUT = 255, 0  # on the body mask: part of the product / a hole through it

# Fixed colours for details that do not take the product's colour.
DEEP: RGBA = (30, 30, 34, 255)
LIGHT: RGBA = (248, 246, 240, 255)
CREAM: RGBA = (238, 228, 204, 255)
METAL: RGBA = (172, 174, 182, 255)
GLOW: RGBA = (255, 224, 120, 255)
LED_RED: RGBA = (236, 40, 36, 255)
LED_BLUE: RGBA = (80, 176, 255, 255)
COFFEE: RGBA = (72, 42, 24, 255)
WOOD: RGBA = (150, 104, 62, 255)
SHADE: RGBA = (0, 0, 0, 70)  # translucent: darkens whatever colour lies below
SHINE: RGBA = (255, 255, 255, 110)

Shape = Callable[[Pen, Pen], None]


def mug(body: Pen, ink: Pen) -> None:
    """Cylinder with a ring handle; coffee shows at the rim."""
    body.ellipse((72, 50, 106, 90), BODY)
    body.ellipse((81, 59, 97, 81), CUT)
    body.rect((28, 36, 86, 106), BODY, radius=8)
    ink.ellipse((31, 33, 83, 45), COFFEE)


def cup(body: Pen, ink: Pen) -> None:
    """Low espresso cup with a small handle on a wide saucer."""
    body.ellipse((16, 94, 112, 112), BODY)
    body.ellipse((84, 62, 104, 82), BODY)
    body.ellipse((89, 67, 99, 77), CUT)
    body.pieslice((34, 28, 94, 102), 0, 180, BODY)
    ink.ellipse((37, 61, 91, 69), COFFEE)
    ink.arc((30, 92, 98, 106), 20, 160, SHADE, 2)


def travel_mug(body: Pen, ink: Pen) -> None:
    """Tall tapered tumbler with a dark lid and a grip band."""
    body.polygon((40, 32, 88, 32, 82, 114, 46, 114), BODY)
    ink.rect((36, 18, 92, 34), DEEP, radius=5)
    ink.rect((52, 21, 70, 25), METAL, radius=2)
    ink.rect((42, 72, 86, 84), SHADE)


def tshirt(body: Pen, ink: Pen, vneck: bool = False) -> None:
    """Flat-lay t-shirt silhouette with a round or V neckline."""
    body.polygon((50, 20, 26, 28, 8, 54, 24, 64, 32, 54, 32, 114,
                  96, 114, 96, 54, 104, 64, 120, 54, 102, 28, 78, 20), BODY)
    if vneck:
        body.polygon((48, 18, 64, 46, 80, 18), CUT)
        ink.line((50, 20, 64, 46, 78, 20), SHADE, 3)
    else:
        body.ellipse((50, 10, 78, 34), CUT)
        ink.arc((49, 9, 79, 35), 0, 180, SHADE, 3)
    ink.line((32, 54, 32, 60), SHADE, 1)
    ink.line((96, 54, 96, 60), SHADE, 1)


def vneck_tshirt(body: Pen, ink: Pen) -> None:
    """A t-shirt with a V neckline."""
    tshirt(body, ink, vneck=True)


def desk_lamp(body: Pen, ink: Pen) -> None:
    """Turned wooden base and stem under a linen trapezoid shade."""
    body.ellipse((34, 100, 94, 116), BODY)
    body.rect((59, 52, 69, 108), BODY, radius=3)
    ink.polygon((38, 22, 90, 22, 104, 62, 24, 62), CREAM)
    ink.polygon((40, 62, 88, 62, 64, 70), GLOW)


def arm_lamp(body: Pen, ink: Pen) -> None:
    """Architect lamp: base, two-joint arm, angled head casting a light cone."""
    ink.polygon((86, 50, 104, 58, 118, 116, 52, 116), (255, 236, 150, 90))
    body.rect((24, 102, 70, 114), BODY, radius=4)
    body.line((46, 104, 36, 62, 84, 34), BODY, 6)
    body.ellipse((31, 57, 41, 67), BODY)
    body.polygon((76, 26, 112, 42, 104, 56, 70, 38), BODY)
    ink.line((86, 48, 104, 56), GLOW, 3)
    ink.ellipse((33, 59, 39, 65), METAL)


def table_lamp(body: Pen, ink: Pen) -> None:
    """Round-bellied base with a neck, under an ivory drum shade."""
    body.ellipse((38, 104, 90, 116), BODY)
    body.ellipse((42, 60, 86, 108), BODY)
    body.rect((59, 46, 69, 64), BODY)
    ink.rect((32, 14, 96, 50), LIGHT, radius=3)
    ink.rect((32, 44, 96, 50), SHADE)
    ink.arc((48, 66, 80, 100), 200, 250, SHINE, 3)


def mushroom_lamp(body: Pen, ink: Pen) -> None:
    """Toadstool night light: a dotted dome on a cream stem."""
    ink.rect((46, 64, 82, 112), CREAM, radius=12)
    body.pieslice((14, 22, 114, 110), 180, 360, BODY)
    ink.rect((48, 64, 80, 70), GLOW)


def floor_lamp(body: Pen, ink: Pen) -> None:
    """Cone shade on a stem over three wooden legs."""
    ink.line((64, 52, 64, 74), DEEP, 3)
    for foot in (30, 64, 98):
        ink.line((64, 72, foot, 120), WOOD, 3)
    body.polygon((44, 10, 84, 10, 98, 54, 30, 54), BODY)


def pendant_lamp(body: Pen, ink: Pen) -> None:
    """Glass dome hanging from a cord, a bulb glowing underneath."""
    ink.line((64, 0, 64, 30), DEEP, 2)
    ink.rect((56, 24, 72, 36), METAL, radius=2)
    body.pieslice((18, 32, 110, 120), 180, 360, BODY)
    ink.ellipse((54, 68, 74, 86), GLOW)
    ink.arc((28, 42, 100, 110), 200, 250, SHINE, 3)


def chime_box(body: Pen, ink: Pen) -> None:
    """Rounded chime unit: dotted speaker grille and three chime-select LEDs."""
    body.rect((28, 20, 100, 108), BODY, radius=16)
    for row in range(5):
        for col in range(5):
            ink.ellipse((43 + col * 9, 32 + row * 9, 47 + col * 9, 36 + row * 9), SHADE)
    for x, color in ((48, LED_RED), (64, (60, 190, 90, 255)), (80, LED_BLUE)):
        ink.ellipse((x - 3, 90, x + 3, 96), color)


def video_doorbell(body: Pen, ink: Pen) -> None:
    """Tall slim doorbell: camera lens on top, glowing ring button below."""
    body.rect((44, 10, 84, 118), BODY, radius=18)
    ink.ellipse((53, 22, 75, 44), (12, 12, 16, 255))
    ink.ellipse((59, 28, 69, 38), (40, 70, 130, 255))
    ink.ellipse((61, 50, 67, 56), (70, 70, 78, 255))
    ink.ring((51, 78, 77, 104), LED_BLUE, 3)
    ink.ellipse((57, 84, 71, 98), (60, 60, 66, 255))


def ship_bell(body: Pen, ink: Pen) -> None:
    """Flared bell with a crown loop, lip and clapper."""
    body.ellipse((55, 10, 73, 30), BODY)
    body.ellipse((60, 15, 68, 25), CUT)
    body.ellipse((46, 24, 82, 44), BODY)
    body.polygon((46, 34, 82, 34, 86, 74, 100, 96, 28, 96, 42, 74), BODY)
    body.rect((24, 92, 104, 102), BODY, radius=4)
    ink.ellipse((58, 100, 70, 112), DEEP)
    ink.line((50, 40, 46, 78), SHINE, 3)


def plug_in_chime(body: Pen, ink: Pen) -> None:
    """Plug-in chime: box with mains pins, sound waves and a note symbol."""
    ink.rect((50, 100, 56, 116), METAL)
    ink.rect((72, 100, 78, 116), METAL)
    body.rect((30, 26, 98, 102), BODY, radius=10)
    for r in (10, 18, 26):
        ink.arc((64 - r, 62 - r, 64 + r, 62 + r), -50, 50, SHADE, 3)
    ink.ellipse((46, 66, 58, 76), DEEP)
    ink.line((57, 71, 57, 46, 64, 50), DEEP, 3)


def push_button(body: Pen, ink: Pen) -> None:
    """Steel wall plate with two screws and a round push button."""
    body.rect((42, 16, 86, 112), BODY, radius=8)
    ink.ellipse((61, 22, 67, 28), SHADE)
    ink.ellipse((61, 100, 67, 106), SHADE)
    ink.ellipse((50, 50, 78, 78), DEEP)
    ink.ellipse((55, 55, 73, 73), LIGHT)


def portable_speaker(body: Pen, ink: Pen) -> None:
    """Capsule speaker with two round drivers."""
    body.rect((10, 42, 118, 98), BODY, radius=28)
    for x in (38, 90):
        ink.ellipse((x - 19, 51, x + 19, 89), DEEP)
        ink.ellipse((x - 11, 59, x + 11, 81), (70, 70, 76, 255))
        ink.ellipse((x - 4, 66, x + 4, 74), DEEP)


def smart_speaker(body: Pen, ink: Pen) -> None:
    """Fabric cylinder whose top has a light ring."""
    body.rect((34, 30, 94, 114), BODY, radius=12)
    ink.ellipse((34, 22, 94, 40), (56, 58, 64, 255))
    ink.ring((40, 25, 88, 37), (70, 220, 230, 255), 2)


def box_speaker(body: Pen, ink: Pen) -> None:
    """Bookshelf box with a tweeter above a woofer."""
    body.rect((32, 12, 96, 116), BODY, radius=4)
    ink.ellipse((54, 22, 74, 42), DEEP)
    ink.ellipse((60, 28, 68, 36), METAL)
    ink.ellipse((38, 52, 90, 104), DEEP)
    ink.ellipse((46, 60, 82, 96), (64, 64, 70, 255))
    ink.ellipse((58, 72, 70, 84), DEEP)


def clock_hands(ink: Pen, cx: float, cy: float, r: float, color: RGBA, ticks: int) -> None:
    """Hands at ten past ten (the pose every catalogue clock takes) and hour marks."""
    for hour in range(0, 12, 12 // ticks):
        a = math.radians(hour * 30)
        sx, sy = math.sin(a), -math.cos(a)
        ink.line((cx + sx * r * 0.8, cy + sy * r * 0.8, cx + sx * r * 0.95, cy + sy * r * 0.95), color, 2)
    ink.line((cx, cy, cx - r * 0.45, cy - r * 0.26), color, 3.5)
    ink.line((cx, cy, cx + r * 0.6, cy - r * 0.35), color, 2.5)
    ink.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), color)


def wall_clock(body: Pen, ink: Pen, dark_face: bool = False) -> None:
    """Round wall clock: a frame ring around a face with hands."""
    body.ellipse((12, 12, 116, 116), BODY)
    if dark_face:
        ink.ellipse((20, 20, 108, 108), DEEP)
        clock_hands(ink, 64, 64, 44, LIGHT, ticks=4)
    else:
        ink.ellipse((22, 22, 106, 106), CREAM)
        clock_hands(ink, 64, 64, 42, DEEP, ticks=12)
        ink.line((64, 64, 52, 96), LED_RED, 1)


def dark_wall_clock(body: Pen, ink: Pen) -> None:
    """A wall clock with a black face and only four hour marks."""
    wall_clock(body, ink, dark_face=True)


def twin_bell_clock(body: Pen, ink: Pen) -> None:
    """Retro alarm clock: round case, two bells on top, a hammer, splayed legs."""
    ink.line((38, 103, 30, 118), METAL, 4)
    ink.line((90, 103, 98, 118), METAL, 4)
    ink.line((64, 12, 64, 34), METAL, 3)
    body.pieslice((14, 14, 54, 54), 180, 360, BODY)
    body.pieslice((74, 14, 114, 54), 180, 360, BODY)
    body.ellipse((22, 30, 106, 114), BODY)
    ink.ellipse((30, 38, 98, 106), LIGHT)
    ink.rect((58, 8, 70, 14), METAL, radius=2)
    clock_hands(ink, 64, 72, 30, DEEP, ticks=12)


SEGMENTS = {"0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg",
            "5": "acdfg", "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg"}


def seven_segment(ink: Pen, text: str, x: float, y: float, height: float, color: RGBA) -> None:
    """Digits as LED segments: clocks need numbers, and no font file is then needed."""
    w, t = height * 0.55, max(1.5, height / 8)
    for char in text:
        if char == ":":
            ink.rect((x, y + height * 0.25, x + t, y + height * 0.25 + t), color)
            ink.rect((x, y + height * 0.65, x + t, y + height * 0.65 + t), color)
            x += t * 3
            continue
        mid = y + height / 2
        boxes = {"a": (x, y, x + w, y + t), "b": (x + w - t, y, x + w, mid),
                 "c": (x + w - t, mid, x + w, y + height), "d": (x, y + height - t, x + w, y + height),
                 "e": (x, mid, x + t, y + height), "f": (x, y, x + t, mid),
                 "g": (x, mid - t / 2, x + w, mid + t / 2)}
        for segment in SEGMENTS[char]:
            ink.rect(boxes[segment], color)
        x += w + t * 2


def digital_clock(body: Pen, ink: Pen) -> None:
    """Bedside clock: a wide box with a red LED display and a snooze bar."""
    body.rect((12, 40, 116, 100), BODY, radius=10)
    body.rect((40, 32, 88, 42), BODY, radius=3)
    ink.rect((22, 50, 106, 90), DEEP, radius=4)
    seven_segment(ink, "07:30", 29, 58, 24, LED_RED)


def dress(body: Pen, ink: Pen) -> None:
    """Short-sleeved A-line dress with a belted waist."""
    body.polygon((50, 10, 30, 16, 18, 34, 30, 42, 40, 34, 44, 58, 22, 118,
                  106, 118, 84, 58, 88, 34, 98, 42, 110, 34, 98, 16, 78, 10), BODY)
    body.ellipse((52, 2, 76, 22), CUT)
    ink.rect((42, 54, 86, 60), SHADE)


def shoe(body: Pen, ink: Pen) -> None:
    """A laced oxford shoe in profile, on a dark heel and sole."""
    body.polygon((14, 96, 14, 56, 26, 48, 52, 52, 70, 66, 104, 76, 118, 88, 118, 96), BODY)
    ink.rect((12, 96, 120, 104), DEEP, radius=2)
    ink.rect((12, 90, 36, 104), DEEP, radius=2)
    for x in (50, 57, 64):
        ink.line((x, 56 + (x - 50) // 2, x + 6, 64 + (x - 50) // 2), LIGHT, 1.5)
    ink.arc((16, 50, 60, 90), 200, 260, SHINE, 2)


def flip_clock(body: Pen, ink: Pen) -> None:
    """Flip clock: a box with two split number cards."""
    body.rect((14, 38, 114, 102), BODY, radius=8)
    for left in (22, 67):
        ink.rect((left, 46, left + 39, 94), (70, 70, 76, 255), radius=4)
        ink.line((left, 70, left + 39, 70), DEEP, 2)
    seven_segment(ink, "12", 27, 55, 30, LIGHT)
    seven_segment(ink, "45", 72, 55, 30, LIGHT)


SHAPES: dict[str, Shape] = {f.__name__: f for f in (
    mug, cup, travel_mug, tshirt, vneck_tshirt, desk_lamp, arm_lamp, table_lamp,
    mushroom_lamp, floor_lamp, pendant_lamp, chime_box, video_doorbell, ship_bell,
    plug_in_chime, push_button, portable_speaker, smart_speaker, box_speaker,
    wall_clock, dark_wall_clock, twin_bell_clock, digital_clock, flip_clock, dress, shoe)}


def shade(color: Sequence[int], factor: float) -> RGB:
    """The colour made darker (factor < 1) or lighter (factor > 1)."""
    r, g, b = (min(255, round(c * factor)) for c in color[:3])
    return (r, g, b)


Pattern = Callable[[Pen, RGB, np.random.Generator], None]


def plain(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """No decoration."""


def stripes(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """Cream horizontal bands (Breton tops, striped glaze)."""
    for y in range(4, GRID, 14):
        pen.rect((0, y, GRID, y + 6), CREAM[:3])


def dots(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """White polka dots on a staggered grid."""
    for row, y in enumerate(range(0, GRID + 16, 14)):
        for x in range(-7 * (row % 2), GRID + 16, 14):
            pen.ellipse((x - 3, y - 3, x + 3, y + 3), LIGHT[:3])


def speckles(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """Random pale flecks, as on enamelware."""
    for x, y, r in zip(rng.uniform(0, GRID, 220), rng.uniform(0, GRID, 220), rng.uniform(0.5, 1.3, 220)):
        pen.ellipse((x - r, y - r, x + r, y + r), shade(color, 1.9))


def sun(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """An orange sun with rays, printed on the chest."""
    for k in range(12):
        a = math.radians(k * 30)
        pen.line((64 + 14 * math.cos(a), 64 + 14 * math.sin(a),
                  64 + 22 * math.cos(a), 64 + 22 * math.sin(a)), (222, 96, 24), 3)
    pen.ellipse((52, 52, 76, 76), (232, 110, 28))


def grain(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """Darker wavy lines, like wood grain."""
    for y0 in range(2, GRID, 7):
        phase = rng.uniform(0, 2 * math.pi)
        points = [v for x in range(0, GRID + 8, 8) for v in (x, y0 + 2 * math.sin(x / 11 + phase))]
        pen.line(points, shade(color, 0.78), 1)


def fabric(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """A fine darker weave."""
    for v in range(0, GRID, 3):
        pen.line((v, 0, v, GRID), shade(color, 0.88), 0.5)
        pen.line((0, v, GRID, v), shade(color, 0.9), 0.5)


def brushed(pen: Pen, color: RGB, rng: np.random.Generator) -> None:
    """Thin horizontal streaks of brushed steel."""
    for y in range(0, GRID, 2):
        pen.line((0, y, GRID, y), shade(color, rng.uniform(0.9, 1.06)), 0.5)


PATTERNS: dict[str, Pattern] = {f.__name__: f for f in (
    plain, stripes, dots, speckles, sun, grain, fabric, brushed)}
FRONT_ONLY = {"sun"}  # prints that a back view does not show

BACKGROUNDS: tuple[RGB, ...] = (
    (236, 230, 218), (220, 232, 242), (230, 240, 224), (244, 226, 224),
    (234, 228, 244), (246, 240, 212), (222, 238, 236), (240, 234, 234),
)


def background(index: int) -> Image.Image:
    """A pastel backdrop with a slightly darker floor, different from product to product."""
    color = BACKGROUNDS[index % len(BACKGROUNDS)]
    canvas = Image.new("RGB", (GRID * SUPERSAMPLE,) * 2, color)
    Pen(canvas).rect((0, 100, GRID, GRID), shade(color, 0.93))
    return canvas


def outline(solid: Image.Image, exclude: Image.Image | None = None) -> Image.Image:
    """A one-grid-pixel band around ``solid`` (minus ``exclude``): an edge that keeps pale
    products visible on pale backdrops."""
    band = ImageChops.subtract(solid.filter(ImageFilter.MaxFilter(2 * SUPERSAMPLE + 1)), solid)
    return band if exclude is None else ImageChops.subtract(band, exclude)


def draw_product(item: Item, index: int, back: bool = False) -> Image.Image:
    """The product picture: silhouette in the product colour and pattern, outline, drop
    shadow and details. The back view is mirrored, without front details or chest print,
    on another backdrop and with a care label."""
    size = (GRID * SUPERSAMPLE,) * 2
    mask, ink = Image.new("L", size, CUT), Image.new("RGBA", size, (0, 0, 0, 0))
    SHAPES[item.shape](Pen(mask), Pen(ink))
    canvas = background(index + 3 if back else index)
    backdrop = canvas.getpixel((0, 0))
    shadow = Image.new("L", size, CUT)
    shadow.paste(mask, (3 * SUPERSAMPLE, 3 * SUPERSAMPLE))
    canvas.paste(shade(backdrop, 0.82), mask=shadow)
    paint_body(canvas, mask, item, back)
    if back:
        add_label(canvas, mask)
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    else:
        opaque_ink = ink.getchannel("A").point(lambda a: BODY if a >= 200 else CUT)
        canvas.paste(shade(backdrop, 0.6), mask=outline(opaque_ink, mask))
        canvas = Image.alpha_composite(canvas.convert("RGBA"), ink).convert("RGB")
    return canvas.resize((GRID, GRID), Image.Resampling.LANCZOS)


def paint_body(canvas: Image.Image, mask: Image.Image, item: Item, back: bool) -> None:
    """Fill the silhouette with the product colour and pattern, and outline it."""
    color = COLORS[item.color]
    body = Image.new("RGB", canvas.size, color)
    pattern = "plain" if back and item.pattern in FRONT_ONLY else item.pattern
    PATTERNS[pattern](Pen(body), color, rng_for(f"pattern-{item.id}"))
    canvas.paste(body, mask=mask)
    canvas.paste(shade(color, 0.55), mask=outline(mask))


def add_label(canvas: Image.Image, mask: Image.Image) -> None:
    """A small care label in the middle of the product, so the back view has a detail."""
    left, top, right, bottom = (v / SUPERSAMPLE for v in mask.getbbox() or (0, 0, 1, 1))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    pen = Pen(canvas)
    pen.rect((cx - 9, cy - 6, cx + 9, cy + 6), LIGHT[:3], radius=1)
    for dy in (-2, 2):
        pen.line((cx - 6, cy + dy, cx + 6, cy + dy), (150, 150, 150), 1)


def image_variant(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A query photo of the same product: cropped, slightly rotated, brighter or darker,
    and resized, so it matches by content but never byte for byte."""
    fill = image.getpixel((0, 0))
    left, top, right, bottom = rng.integers(3, 14, size=4)
    image = image.crop((int(left), int(top), GRID - int(right), GRID - int(bottom)))
    image = image.rotate(float(rng.uniform(-9, 9)), Image.Resampling.BICUBIC, fillcolor=fill)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.82, 1.18)))
    return image.resize((QUERY_IMAGE_SIZE,) * 2, Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- sound

Synth = Callable[[np.random.Generator, float, float], np.ndarray]  # (rng, pitch, tempo) -> samples
SAW = tuple((k, 1 / k) for k in range(1, 7))  # bright, buzzy partials
BELL = ((0.5, 0.5), (1.0, 1.0), (1.19, 0.6), (1.5, 0.4), (2.0, 0.5), (2.5, 0.25), (2.66, 0.2))


def timeline(seconds: float) -> np.ndarray:
    """Sample times, in seconds, of a clip this long."""
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def struck(freq: float, seconds: float, decay: float, partials: Sequence[tuple[float, float]]) -> np.ndarray:
    """A struck note: (ratio, amplitude) partials dying away, higher ones faster, as in
    bells and chimes; a 4 ms attack avoids a click."""
    t = timeline(seconds)
    wave = sum(a * np.sin(2 * np.pi * freq * r * t) * np.exp(-t * r / decay) for r, a in partials)
    return wave * np.minimum(1.0, t / 0.004)


def held(
    freq: float, seconds: float, partials: Sequence[tuple[float, float]], fade: float = 0.01
) -> np.ndarray:
    """A sustained note that fades in and out over ``fade`` seconds (beeps, pads)."""
    t = timeline(seconds)
    wave = sum(a * np.sin(2 * np.pi * freq * r * t) for r, a in partials)
    return wave * np.clip(np.minimum(t, seconds - t) / fade, 0.0, 1.0)


def mix(seconds: float, events: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    """Lay (start time, clip) events on a silent track, cutting what runs past the end."""
    track = np.zeros(int(seconds * SAMPLE_RATE))
    for start, clip in events:
        i = int(start * SAMPLE_RATE)
        part = clip[: max(0, len(track) - i)]
        track[i : i + len(part)] += part
    return track


def wobble(rng: np.random.Generator, value: float, spread: float = 0.01) -> float:
    """The value nudged by up to ``spread`` (relative): each take sounds a little different."""
    return value * (1 + rng.uniform(-spread, spread))


def ding_dong(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Two-tone door chime: 660 Hz then 520 Hz, struck with harmonics."""
    partials = ((1, 1.0), (2, 0.3), (3, 0.12))
    notes = [(0.0, 660.0), (0.45, 520.0)]
    events = [(t / tempo, struck(wobble(rng, f * pitch), 0.9, 0.6, partials)) for t, f in notes]
    return mix(1.2 / tempo, events)


def beep_melody(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Smart doorbell: a rising three-beep electronic motif, played twice."""
    partials = ((1, 1.0), (3, 0.15))
    events = [((rep * 0.5 + k * 0.15) / tempo, held(wobble(rng, f * pitch), 0.12 / tempo, partials))
              for rep in range(2) for k, f in enumerate((880.0, 1174.7, 1568.0))]
    return mix(1.0 / tempo, events)


def brass_bell(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Brass bell struck twice: inharmonic partials with a long hum."""
    strikes = [(0.0, 1.0), (0.6 / tempo, 0.7)]
    return mix(1.3 / tempo, [(t, a * struck(wobble(rng, 600 * pitch), 1.6, 1.2, BELL)) for t, a in strikes])


def westminster(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """The Westminster quarter: E5 C5 D5 G4 on soft chimes."""
    partials = ((1, 1.0), (2, 0.2), (3, 0.08))
    notes = (659.3, 523.3, 587.3, 392.0)
    events = [(k * 0.25 / tempo, struck(wobble(rng, f * pitch), 0.8, 0.5, partials))
              for k, f in enumerate(notes)]
    return mix(1.2 / tempo, events)


def kick() -> np.ndarray:
    """A bass drum: a sine sweeping down from 120 Hz to 50 Hz."""
    t = timeline(0.2)
    freq = 50 + 70 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.08)


def hihat(rng: np.random.Generator) -> np.ndarray:
    """A hi-hat: a very short burst of high-passed noise."""
    noise = np.diff(rng.normal(0, 1, int(0.05 * SAMPLE_RATE) + 1))
    return 0.15 * noise * np.exp(-timeline(0.05) / 0.01)


def pop_loop(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Speaker demo: C G Am F on a bright synth, over kick and hi-hat."""
    beat = 0.25 / tempo
    chords = ((261.6, 329.6, 392.0), (196.0, 246.9, 293.7), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6))
    events: list[tuple[float, np.ndarray]] = []
    for k, chord in enumerate(chords):
        events += [(k * beat, 0.3 * struck(wobble(rng, f * pitch), 1.5 * beat, 0.4, SAW)) for f in chord]
        events += [(k * beat, kick()), (k * beat + beat / 2, hihat(rng))]
    return mix(len(chords) * beat + 0.15, events)


def wake_arpeggio(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Voice-assistant wake sound: a quick, soft rising C major arpeggio."""
    partials = ((1, 1.0), (2, 0.1))
    notes = (523.3, 659.3, 784.0, 1046.5)
    events = [(k * 0.11 / tempo, struck(wobble(rng, f * pitch), 0.7, 0.45, partials))
              for k, f in enumerate(notes)]
    return mix(1.0 / tempo, events)


def mellow_chords(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Hi-fi demo: slow Am7 then Fmaj7 pads over a deep bass note."""
    partials = ((1, 1.0), (2, 0.25), (3, 0.06))
    chords = ((110.0, (220.0, 261.6, 329.6, 392.0)), (87.3, (174.6, 220.0, 261.6, 329.6)))
    length = 0.55 / tempo
    events: list[tuple[float, np.ndarray]] = []
    for k, (bass, chord) in enumerate(chords):
        events.append((k * length, 0.9 * held(wobble(rng, bass * pitch), length, partials, fade=0.08)))
        events += [(k * length, 0.3 * held(wobble(rng, f * pitch), length, partials, fade=0.08))
                   for f in chord]
    return mix(2 * length, events)


def beeper(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Digital alarm: groups of four fast square-wave beeps at about 2 kHz."""
    t = timeline(0.06 / tempo)
    freq = wobble(rng, 2000 * pitch)
    beep = 0.5 * np.sign(np.sin(2 * np.pi * freq * t))
    events = [((group * 0.5 + k * 0.12) / tempo, beep) for group in range(2) for k in range(4)]
    return mix(1.0 / tempo, events)


def click(rng: np.random.Generator, freq: float) -> np.ndarray:
    """One clock tick: a noise snap plus a short ring of the case."""
    t = timeline(0.04)
    snap = rng.normal(0, 1, len(t)) * np.exp(-t / 0.002)
    return snap + np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.008)


def tick_tock(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Ticking clock: alternating tick and tock clicks over faint mechanism noise."""
    pitches = (3200, 2500, 3200)  # tick, tock, tick
    events = [(wobble(rng, (0.05 + 0.5 * k) / tempo, 0.02), click(rng, f * pitch))
              for k, f in enumerate(pitches)]
    track = mix(1.15 / tempo, events)
    return track + rng.normal(0, 0.01, len(track))


def bell_ring(rng: np.random.Generator, pitch: float, tempo: float) -> np.ndarray:
    """Twin-bell alarm: a hammer striking two bells about 16 times a second."""
    partials = ((1, 1.0), (2.3, 0.4), (3.9, 0.2))
    bells = (wobble(rng, 2300 * pitch), wobble(rng, 2750 * pitch))
    events = [(k / (16 * tempo), wobble(rng, 1.0, 0.2) * struck(bells[k % 2], 0.3, 0.25, partials))
              for k in range(15)]
    return mix(1.0 / tempo, events)


SOUNDS: dict[str, Synth] = {f.__name__: f for f in (
    ding_dong, beep_melody, brass_bell, westminster, pop_loop, wake_arpeggio,
    mellow_chords, beeper, tick_tock, bell_ring)}


def render_sound(name: str, rng: np.random.Generator, pitch: float = 1.0, tempo: float = 1.0,
                 noise: float = 0.002) -> np.ndarray:
    """A synthesized clip scaled to a -2 dBFS peak, with a floor of white noise."""
    clip = SOUNDS[name](rng, pitch, tempo)
    clip = 0.8 * clip / np.abs(clip).max() + rng.normal(0, noise, len(clip))
    return np.clip(clip, -1.0, 1.0)


# --------------------------------------------------------------------------- files


def clean(out: Path) -> None:
    """Delete the files an earlier run wrote, and nothing else in ``out``."""
    for name in OWNED_FILES:
        (out / name).unlink(missing_ok=True)
    for pattern in OWNED_GLOBS:
        for path in out.glob(pattern):
            path.unlink()


def save_png(image: Image.Image, path: Path) -> None:
    """Save as an optimized RGB PNG; Pillow writes no timestamp, so the bytes are stable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, format="PNG", optimize=True)


def save_wav(samples: np.ndarray, path: Path) -> None:
    """Save as 16 kHz mono 16-bit PCM WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """UTF-8 CSV with a header row and Unix line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_products(out: Path) -> None:
    """Draw every product (and back views), synthesize the sounds, write products.csv and
    zh/products.csv (media paths relative to ``out``: ingest it with --media-dir)."""
    rows = []
    for index, item in enumerate(CATALOG + ZH_CATALOG):
        images = [f"images/{item.id}.png"]
        save_png(draw_product(item, index), out / images[0])
        if item.back:
            images.append(f"images/{item.id}_back.png")
            save_png(draw_product(item, index, back=True), out / images[1])
        audio = f"audio/{item.id}.wav" if item.sound else ""
        if audio:
            save_wav(render_sound(item.sound, rng_for(f"sound-{item.id}")), out / audio)
        rows.append([item.id, item.title, item.description, item.category, item.brand, item.price,
                     "|".join(images), audio, item.color_name or item.color, item.material])
    write_csv(out / "products.csv", PRODUCT_COLUMNS, rows[: len(CATALOG)])
    write_csv(out / "zh" / "products.csv", PRODUCT_COLUMNS, rows)


def write_query_media(query: Query, item: Item, index: int, out: Path) -> tuple[str, str]:
    """Make the query's image and audio variants of its target; return their paths.
    Variants are seeded by the target, so two queries on one product share the files."""
    image = audio = ""
    if query.image:
        image = f"queries/q_{item.id}.png"
        save_png(image_variant(draw_product(item, index), rng_for(f"query-image-{item.id}")), out / image)
    if query.audio:
        audio = f"queries/q_{item.id}.wav"
        rng = rng_for(f"query-audio-{item.id}")
        pitch, tempo = float(rng.choice([0.96, 1.04])), float(rng.choice([0.93, 1.07]))
        save_wav(render_sound(item.sound, rng, pitch, tempo, noise=0.02), out / audio)
    return image, audio


def relevance(query: Query) -> list[tuple[str, str, int]]:
    """qrels rows for one query: 2 for the target (and its equals), 1 for each related product."""
    target = next(item for item in CATALOG + ZH_CATALOG if item.id == query.target)
    related = query.related
    if related is None:
        related = tuple(item.id for item in CATALOG if item.category == target.category)
    best = [(query.id, pid, 2) for pid in (target.id, *query.equal)]
    return best + [(query.id, pid, 1) for pid in related if pid != target.id]


def write_queries(out: Path) -> None:
    """Write the query media, queries.csv and qrels.csv."""
    index_of = {item.id: index for index, item in enumerate(CATALOG)}
    query_rows, qrel_rows = [], []
    for query in QUERIES:
        index = index_of[query.target]
        image, audio = write_query_media(query, CATALOG[index], index, out)
        query_rows.append([query.id, query.text, image, audio, query.modality])
        qrel_rows += relevance(query)
    write_csv(out / "queries.csv", ("query_id", "text", "image", "audio", "modality"), query_rows)
    write_csv(out / "qrels.csv", ("query_id", "product_id", "relevance"), qrel_rows)
    write_csv(out / "zh" / "queries.csv", ("query_id", "text"), [(q.id, q.text) for q in ZH_QUERIES])
    write_csv(out / "zh" / "qrels.csv", ("query_id", "product_id", "relevance"), [r for q in ZH_QUERIES for r in relevance(q)])


README = """\
# Sample data: a small demo shop

A synthetic home-and-gadgets shop for trying mmsearch end to end and for measuring its
ranking (queries.csv + qrels.csv).
Everything here is generated, deterministically, by

    python scripts/make_sample_data.py

so do not edit these files by hand: change the script and run it again.

- `products.csv`: the catalog, {products} products in {categories} categories
  (`id,title,description,category,brand,price,image,audio,color,material`;
  `color` and `material` are attribute columns). A product with several images lists
  them separated by `|`.
- `images/`: one drawn 128x128 PNG per product, plus `*_back.png` back views.
- `audio/`: 16 kHz mono 16-bit WAV clips for the {sounding} products that make a sound.
- `queries.csv`: {queries} evaluation queries (`query_id,text,image,audio,modality`):
  text, image, audio and mixed (text + image) queries. Media paths are relative to this
  folder; `modality` is optional (e.g. `lexical,text`) and empty in most rows.
- `queries/`: query images and clips, variants (crop, rotation, brightness; new take,
  pitch, tempo, noise) of a product's own media, never copies.
- `qrels.csv`: graded relevance (`query_id,product_id,relevance`): 2 for the product a
  query is meant to find, 1 for clearly related products.
- `zh/`: a mixed-language shop: `zh/products.csv` is the catalog above plus {zh_products}
  Chinese and bilingual products ({zh_ids}; attribute values in Chinese), with media
  paths relative to this folder: `mmsearch ingest sample_data/zh/products.csv
  --media-dir sample_data`. `zh/queries.csv` has {zh_queries} text queries (Chinese for
  Chinese products, Chinese for English ones, English for Chinese ones, one mixed) and
  `zh/qrels.csv` their judgments (2 also for the same product in the other language).
"""


def write_readme(out: Path) -> None:
    """A README that says what the folder is and how it was made."""
    text = README.format(
        products=len(CATALOG),
        categories=len({item.category for item in CATALOG}),
        sounding=sum(1 for item in CATALOG if item.sound),
        queries=len(QUERIES),
        zh_products=len(ZH_CATALOG),
        zh_ids=f"{ZH_CATALOG[0].id} to {ZH_CATALOG[-1].id}",
        zh_queries=len(ZH_QUERIES),
    )
    (out / "README.md").write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    """Rewrite the owned files of the output folder from scratch."""
    parser = argparse.ArgumentParser(description="Generate the mmsearch demo shop (sample_data/).")
    parser.add_argument("--out", type=Path, default=REPO / "sample_data",
                        help="folder to write (default: <repo>/sample_data)")
    out: Path = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    clean(out)
    write_products(out)
    write_queries(out)
    write_readme(out)
    print(f"wrote {len(CATALOG)} products and {len(QUERIES)} queries to {out}, "
          f"{len(CATALOG) + len(ZH_CATALOG)} products and {len(ZH_QUERIES)} queries to {out / 'zh'}")


if __name__ == "__main__":
    main()
