"""English -> Chinese for every attribute value of the Myntra dev split, hand-checked.

A translation, not native data: no Chinese product catalog is reachable offline, so the
Chinese/bilingual evaluation (benchmarks/chinese.py) rewrites the dev split's products
and queries with these words. The wording is what Chinese shops (Taobao, JD) write:
``T恤`` for Tshirts, ``休闲鞋`` for Casual Shoes, ``藏青色`` for Navy Blue, ``男士`` /
``女士`` for Men / Women. Indian garments keep their name, transliterated as Chinese
sellers of them do (``纱丽`` sari, ``库尔塔`` kurta).

Distinct English values get distinct Chinese words (so grading by attribute stays
exact): Scarves 围巾 / Mufflers 围脖, Maroon 枣红色 / Burgundy 酒红色, Boxers 四角裤 /
Trunk 平角内裤, Free Gifts 赠品 / Free Items 免费赠品. As in English ("Navy Blue"
holds "Blue"), some values hold another as a part (蓝绿色 holds 绿色).
"""

from __future__ import annotations

ARTICLE_TYPES = {
    "Tshirts": "T恤", "Shirts": "衬衫", "Casual Shoes": "休闲鞋", "Watches": "手表", "Sports Shoes": "运动鞋",
    "Kurtas": "库尔塔长衫", "Tops": "上衣", "Handbags": "手提包", "Heels": "高跟鞋", "Sunglasses": "太阳镜",
    "Flip Flops": "人字拖", "Sandals": "凉鞋", "Wallets": "钱包", "Briefs": "三角内裤", "Belts": "腰带",
    "Backpacks": "双肩包", "Formal Shoes": "正装皮鞋", "Socks": "袜子", "Perfume and Body Mist": "香水及身体喷雾",
    "Trousers": "长裤", "Earrings": "耳环", "Flats": "平底鞋", "Shorts": "短裤", "Jeans": "牛仔裤", "Bra": "文胸",
    "Dresses": "连衣裙", "Deodorant": "香体止汗露", "Jackets": "夹克", "Track Pants": "运动裤", "Sarees": "纱丽",
    "Caps": "鸭舌帽", "Nail Polish": "指甲油", "Lipstick": "口红", "Clutches": "手拿包", "Tunics": "长款上衣",
    "Kurtis": "短款库尔塔", "Sweatshirts": "卫衣", "Ties": "领带", "Innerwear Vests": "打底背心",
    "Necklace and Chains": "项链", "Sweaters": "毛衣", "Leggings": "打底裤", "Nightdress": "睡裙",
    "Dupatta": "杜帕塔披巾", "Capris": "七分裤", "Night suits": "睡衣套装", "Pendant": "吊坠", "Scarves": "围巾",
    "Lip Gloss": "唇彩", "Face Moisturisers": "面部保湿霜", "Bangle": "手镯", "Skirts": "半身裙",
    "Laptop Bag": "电脑包", "Foundation and Primer": "粉底及妆前乳", "Duffel Bag": "旅行袋", "Boxers": "四角裤",
    "Trunk": "平角内裤", "Kurta Sets": "库尔塔套装", "Cufflinks": "袖扣", "Jewellery Set": "首饰套装", "Ring": "戒指",
    "Free Gifts": "赠品", "Accessory Gift Set": "配饰礼盒", "Fragrance Gift Set": "香水礼盒",
    "Kajal and Eyeliner": "眼线笔", "Lounge Pants": "家居裤", "Bracelet": "手链", "Lounge Shorts": "家居短裤",
    "Sports Sandals": "运动凉鞋", "Patiala": "帕提亚拉裤", "Suspenders": "背带", "Stockings": "长筒袜",
    "Jumpsuit": "连体裤", "Stoles": "披肩", "Mobile Pouch": "手机袋", "Travel Accessory": "旅行配件",
    "Face Wash and Cleanser": "洗面奶", "Baby Dolls": "吊带睡裙", "Messenger Bag": "邮差包", "Compact": "粉饼",
    "Salwar": "萨尔瓦裤", "Waist Pouch": "腰包", "Camisoles": "吊带背心", "Swimwear": "泳装", "Churidar": "丘里达裤",
    "Concealer": "遮瑕膏", "Mufflers": "围脖", "Footballs": "足球", "Mascara": "睫毛膏", "Lip Liner": "唇线笔",
    "Hair Colour": "染发剂", "Eyeshadow": "眼影", "Shapewear": "塑身衣", "Eye Cream": "眼霜",
    "Nehru Jackets": "尼赫鲁马甲", "Mask and Peel": "面膜", "Waistcoat": "西装马甲", "Tracksuits": "运动套装",
    "Jeggings": "牛仔打底裤", "Clothing Set": "服装套装", "Shrug": "短款开衫", "Lip Plumper": "丰唇蜜",
    "Lip Care": "润唇膏", "Sunscreen": "防晒霜", "Highlighter and Blush": "高光及腮红", "Rain Jacket": "雨衣",
    "Bath Robe": "浴袍", "Makeup Remover": "卸妆液", "Wristbands": "护腕", "Rompers": "连体短裤",
}

COLOURS = {
    "Black": "黑色", "White": "白色", "Blue": "蓝色", "Brown": "棕色", "Red": "红色", "Grey": "灰色", "Green": "绿色",
    "Pink": "粉色", "Navy Blue": "藏青色", "Purple": "紫色", "Silver": "银色", "Yellow": "黄色", "Beige": "米色",
    "Gold": "金色", "Orange": "橙色", "Maroon": "枣红色", "Cream": "奶油色", "Olive": "橄榄绿", "Multi": "多色",
    "Steel": "钢灰色", "Magenta": "洋红色", "Peach": "蜜桃色", "Skin": "肤色", "Khaki": "卡其色", "Charcoal": "炭灰色",
    "Off White": "米白色", "Lavender": "薰衣草紫", "Copper": "铜色", "Teal": "蓝绿色", "Grey Melange": "麻灰色",
    "Tan": "棕褐色", "Mustard": "芥末黄", "Rust": "铁锈红", "Metallic": "金属色", "Coffee Brown": "咖啡色",
    "Bronze": "古铜色", "Rose": "玫瑰色", "Turquoise Blue": "土耳其蓝", "Burgundy": "酒红色", "Nude": "裸色",
    "Mushroom Brown": "蘑菇棕", "Mauve": "淡紫色", "Taupe": "灰褐色",
}

GENDERS = {"Men": "男士", "Women": "女士", "Unisex": "男女通用", "Boys": "男童", "Girls": "女童", "": ""}

USAGES = {
    "Casual": "休闲", "Sports": "运动", "Ethnic": "民族风", "Formal": "正装", "Smart Casual": "商务休闲",
    "Travel": "旅行", "Party": "派对", "": "",
}

MASTER_CATEGORIES = {
    "Apparel": "服装", "Accessories": "配饰", "Footwear": "鞋类", "Personal Care": "个人护理",
    "Free Items": "免费赠品", "Sporting Goods": "体育用品",
}

SUB_CATEGORIES = {
    "Topwear": "上装", "Shoes": "鞋", "Bags": "包袋", "Bottomwear": "下装", "Watches": "手表", "Innerwear": "内衣",
    "Jewellery": "首饰", "Eyewear": "眼镜", "Fragrance": "香氛", "Flip Flops": "人字拖", "Sandal": "凉鞋",
    "Wallets": "钱包", "Belts": "腰带", "Socks": "袜子", "Loungewear and Nightwear": "家居服及睡衣", "Lips": "唇妆",
    "Dress": "裙装", "Saree": "纱丽", "Headwear": "帽饰", "Nails": "美甲", "Ties": "领带", "Makeup": "彩妆",
    "Scarves": "围巾", "Accessories": "配饰", "Skin": "护肤", "Apparel Set": "服装套装", "Free Gifts": "赠品",
    "Cufflinks": "袖扣", "Skin Care": "护肤品", "Eyes": "眼妆", "Stoles": "披肩", "Mufflers": "围脖",
    "Sports Equipment": "运动器材", "Hair": "美发", "Sports Accessories": "运动配件",
}

SEASONS = {"Fall": "秋季", "Summer": "夏季", "Winter": "冬季", "Spring": "春季", "": ""}

#: the catalog column each table translates (benchmarks.datasets.myntra_catalog's names)
COLUMNS = {
    "category": ARTICLE_TYPES,
    "baseColour": COLOURS,
    "gender": GENDERS,
    "usage": USAGES,
    "masterCategory": MASTER_CATEGORIES,
    "subCategory": SUB_CATEGORIES,
    "season": SEASONS,
}
#: the source rows' columns (benchmarks.datasets.ATTRIBUTES and the rest) -> their table
SOURCE_COLUMNS = {"articleType": ARTICLE_TYPES, **{c: t for c, t in COLUMNS.items() if c != "category"}}


def missing(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """Values of ``rows`` (source rows: articleType, baseColour, ...) the glossary lacks."""
    gaps = {column: sorted({r[column] for r in rows} - set(table)) for column, table in SOURCE_COLUMNS.items()}
    return {column: values for column, values in gaps.items() if values}
