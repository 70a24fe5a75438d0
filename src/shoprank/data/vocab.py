"""Catalog vocabularies and the vectorised title/description builder.

Everything here is immutable data (tuples and frozen dataclasses) plus pure functions, so the
generator can derive the category tree, the seasonal profiles and the English product texts
from it. Text similarity carries real signal: products in the same leaf share nouns, products
of one brand share the brand name and its tagline, and products of one material share the
material word and its care phrase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_BAND_SHARES: tuple[float, ...] = (0.13, 0.24, 0.21, 0.18, 0.14, 0.10)
REGIONS: tuple[str, ...] = (
    "north",
    "south",
    "east",
    "west",
    "central",
    "london",
    "scotland",
    "wales",
)
REGION_SHARES: tuple[float, ...] = (0.15, 0.16, 0.11, 0.10, 0.14, 0.19, 0.09, 0.06)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
TRAFFIC_SOURCES: tuple[str, ...] = ("direct", "search", "email", "social", "ads")
EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")

# Monthly multipliers (January..December) for category seasons.
SEASON_PROFILES: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "flat": (1.0, 0.95, 1.0, 1.0, 1.0, 0.95, 0.95, 1.0, 1.0, 1.0, 1.05, 1.1),
        "spring": (0.5, 0.7, 1.3, 1.8, 1.7, 1.3, 1.0, 0.8, 0.8, 0.7, 0.6, 0.6),
        "summer": (0.45, 0.55, 0.85, 1.3, 1.7, 1.9, 1.8, 1.4, 0.9, 0.6, 0.45, 0.5),
        "hot": (0.25, 0.3, 0.45, 0.8, 1.5, 2.5, 2.8, 2.1, 0.9, 0.4, 0.25, 0.25),
        "winter": (1.9, 1.6, 1.1, 0.7, 0.45, 0.35, 0.35, 0.45, 0.8, 1.4, 1.9, 2.0),
        "autumn": (1.2, 1.0, 0.8, 0.6, 0.5, 0.5, 0.5, 0.7, 1.2, 1.6, 1.6, 1.3),
        "gifts": (0.6, 0.9, 0.7, 0.7, 0.75, 0.75, 0.75, 0.75, 0.85, 1.1, 2.0, 3.2),
        "toys": (0.7, 0.6, 0.7, 0.7, 0.7, 0.7, 0.8, 0.8, 0.9, 1.2, 2.0, 2.9),
        "gift_mild": (0.85, 0.85, 0.85, 0.85, 0.9, 0.9, 0.9, 0.9, 0.95, 1.05, 1.5, 1.8),
        "fitness": (1.9, 1.4, 1.1, 1.0, 1.0, 0.9, 0.8, 0.8, 1.0, 0.9, 0.9, 0.8),
        "school": (0.9, 0.85, 0.85, 0.85, 0.85, 0.9, 1.1, 1.6, 1.5, 0.95, 1.1, 1.3),
    }
)

# Each L1 category's tilt per age band (18-24 .. 65+), region (REGIONS order) and device.
_FLAT_REGION = (1.0,) * 8


@dataclass(frozen=True)
class Leaf:
    """A leaf (L2) category."""

    name: str
    base_price: float
    nouns: tuple[str, ...]
    season: str


@dataclass(frozen=True)
class TopCategory:
    """A top-level (L1) category with its leaves and shared vocabulary."""

    name: str
    leaves: tuple[Leaf, ...]
    adjectives: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    age_tilt: tuple[float, ...]
    region_tilt: tuple[float, ...] = _FLAT_REGION
    device_tilt: tuple[float, ...] = (1.0, 1.0, 1.0)


CATEGORIES: tuple[TopCategory, ...] = (
    TopCategory(
        name="Home & Garden",
        leaves=(
            Leaf(
                "Garden Furniture",
                120.0,
                ("Bistro Set", "Garden Bench", "Sun Lounger", "Patio Table"),
                "summer",
            ),
            Leaf(
                "Planters & Pots",
                22.0,
                ("Planter", "Plant Pot", "Window Box", "Hanging Basket"),
                "spring",
            ),
            Leaf(
                "Lawn Mowers",
                180.0,
                ("Lawn Mower", "Grass Trimmer", "Robot Mower", "Lawn Scarifier"),
                "spring",
            ),
            Leaf(
                "Garden Tools",
                25.0,
                ("Trowel", "Pruning Shears", "Garden Rake", "Hose Reel", "Spade"),
                "spring",
            ),
            Leaf(
                "Bedding",
                45.0,
                ("Duvet Cover", "Pillowcase Set", "Fitted Sheet", "Mattress Topper"),
                "flat",
            ),
            Leaf(
                "Home Decor",
                30.0,
                ("Wall Mirror", "Vase", "Picture Frame", "Table Lamp", "Rug"),
                "gift_mild",
            ),
        ),
        adjectives=(
            "Classic",
            "Rustic",
            "Modern",
            "Weatherproof",
            "Compact",
            "Elegant",
            "Sturdy",
            "Scandi",
        ),
        materials=("Wood", "Steel", "Ceramic", "Rattan", "Cotton", "Linen"),
        features=(
            "Resists fading and easy to wipe clean.",
            "Assembles in minutes with no tools.",
            "Built to last through every season.",
            "Folds flat for simple storage.",
        ),
        uses=(
            "lazy summer afternoons in the garden",
            "refreshing a tired bedroom",
            "weekend projects around the house",
            "adding warmth to a living room",
        ),
        age_tilt=(0.4, 0.8, 1.1, 1.3, 1.5, 1.5),
        region_tilt=(1.0, 1.3, 1.1, 1.2, 1.0, 0.6, 0.9, 1.2),
        device_tilt=(0.9, 1.1, 1.2),
    ),
    TopCategory(
        name="Electronics",
        leaves=(
            Leaf("Headphones", 60.0, ("Headphones", "Earbuds", "Headset"), "gift_mild"),
            Leaf("Smartphones", 420.0, ("Smartphone", "Phone", "Mobile Phone"), "gift_mild"),
            Leaf("Laptops", 650.0, ("Laptop", "Notebook", "Ultrabook", "Chromebook"), "school"),
            Leaf(
                "Smart Home",
                70.0,
                ("Smart Speaker", "Smart Plug", "Video Doorbell", "Smart Bulb"),
                "gift_mild",
            ),
            Leaf(
                "Cameras",
                380.0,
                ("Camera", "Action Camera", "Mirrorless Camera", "Camera Lens"),
                "summer",
            ),
            Leaf(
                "TV & Audio",
                450.0,
                ("Television", "Soundbar", "Projector", "Streaming Stick"),
                "gift_mild",
            ),
        ),
        adjectives=(
            "Wireless",
            "Smart",
            "Ultra-Slim",
            "Pro",
            "Portable",
            "High-Definition",
            "Noise-Cancelling",
            "Fast-Charging",
        ),
        materials=("Aluminium", "Plastic", "Glass", "Carbon Fibre"),
        features=(
            "Long battery life keeps you going all day.",
            "Pairs instantly over Bluetooth.",
            "Crisp sound and sharp picture quality.",
            "Comes with a two-year warranty.",
        ),
        uses=(
            "working from home",
            "gaming marathons",
            "commuting and travel",
            "movie nights on the sofa",
        ),
        age_tilt=(1.6, 1.4, 1.1, 0.9, 0.7, 0.5),
        region_tilt=(1.0, 0.9, 1.0, 0.9, 1.1, 1.4, 0.9, 0.9),
        device_tilt=(1.0, 1.3, 0.9),
    ),
    TopCategory(
        name="Fashion",
        leaves=(
            Leaf(
                "Coats & Jackets",
                85.0,
                ("Parka", "Puffer Jacket", "Trench Coat", "Rain Jacket"),
                "winter",
            ),
            Leaf("Swimwear", 28.0, ("Swimsuit", "Bikini", "Swim Shorts"), "hot"),
            Leaf(
                "Dresses", 45.0, ("Midi Dress", "Maxi Dress", "Shirt Dress", "Wrap Dress"), "summer"
            ),
            Leaf("Knitwear", 40.0, ("Jumper", "Cardigan", "Roll-Neck Sweater"), "winter"),
            Leaf("Trainers", 65.0, ("Trainers", "Sneakers", "Running Shoes"), "flat"),
            Leaf(
                "Handbags", 55.0, ("Tote Bag", "Crossbody Bag", "Clutch", "Backpack"), "gift_mild"
            ),
        ),
        adjectives=(
            "Slim-Fit",
            "Oversized",
            "Classic",
            "Relaxed",
            "Tailored",
            "Lightweight",
            "Cosy",
            "Vintage",
        ),
        materials=("Cotton", "Wool", "Leather", "Denim", "Polyester", "Cashmere"),
        features=(
            "Machine washable at 30 degrees.",
            "Cut for a flattering, easy fit.",
            "Soft against the skin all day.",
            "Made with recycled fibres.",
        ),
        uses=("everyday wear", "weekends away", "nights out", "the office and beyond"),
        age_tilt=(1.7, 1.4, 1.0, 0.8, 0.6, 0.5),
        region_tilt=(0.9, 1.0, 0.9, 0.9, 1.0, 1.5, 0.9, 0.9),
        device_tilt=(1.3, 0.8, 1.0),
    ),
    TopCategory(
        name="Beauty",
        leaves=(
            Leaf(
                "Skincare", 24.0, ("Moisturiser", "Serum", "Face Cleanser", "Night Cream"), "flat"
            ),
            Leaf("Fragrance", 48.0, ("Eau de Parfum", "Eau de Toilette", "Body Mist"), "gifts"),
            Leaf(
                "Makeup", 16.0, ("Lipstick", "Mascara", "Foundation", "Eyeshadow Palette"), "flat"
            ),
            Leaf("Hair Care", 14.0, ("Shampoo", "Conditioner", "Hair Mask", "Hair Dryer"), "flat"),
            Leaf("Sun Care", 12.0, ("Sun Cream", "After-Sun Lotion", "Tanning Oil"), "hot"),
            Leaf(
                "Grooming", 30.0, ("Beard Trimmer", "Electric Shaver", "Grooming Kit"), "gift_mild"
            ),
        ),
        adjectives=(
            "Hydrating",
            "Gentle",
            "Radiant",
            "Vegan",
            "Fragrance-Free",
            "Nourishing",
            "Long-Lasting",
            "Travel-Size",
        ),
        materials=("Glass", "Plastic", "Aluminium", "Bamboo"),
        features=(
            "Dermatologically tested for sensitive skin.",
            "Cruelty-free and vegan.",
            "Lightweight formula that absorbs quickly.",
            "Refillable packaging.",
        ),
        uses=("a morning routine", "pampering evenings", "holiday packing", "a thoughtful gift"),
        age_tilt=(1.8, 1.5, 1.0, 0.8, 0.7, 0.5),
        region_tilt=(1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 0.9, 0.9),
        device_tilt=(1.4, 0.7, 1.0),
    ),
    TopCategory(
        name="Sports & Outdoors",
        leaves=(
            Leaf(
                "Fitness Equipment",
                75.0,
                ("Dumbbell Set", "Kettlebell", "Exercise Bike", "Resistance Bands"),
                "fitness",
            ),
            Leaf(
                "Camping Gear",
                70.0,
                ("Tent", "Sleeping Bag", "Camping Stove", "Camping Chair"),
                "summer",
            ),
            Leaf(
                "Cycling", 140.0, ("Bike Helmet", "Bike Light", "Road Bike", "Bike Lock"), "spring"
            ),
            Leaf(
                "Running Gear",
                35.0,
                ("Running Vest", "Running Tights", "Hydration Belt", "Running Cap"),
                "fitness",
            ),
            Leaf("Yoga & Pilates", 25.0, ("Yoga Mat", "Yoga Block", "Pilates Ring"), "fitness"),
            Leaf(
                "Winter Sports",
                110.0,
                ("Ski Goggles", "Snow Jacket", "Thermal Base Layer", "Ski Gloves"),
                "winter",
            ),
        ),
        adjectives=(
            "Breathable",
            "Lightweight",
            "Waterproof",
            "Adjustable",
            "Heavy-Duty",
            "Ergonomic",
            "Insulated",
            "All-Weather",
        ),
        materials=("Nylon", "Steel", "Neoprene", "Polyester", "Rubber"),
        features=(
            "Tested in harsh outdoor conditions.",
            "Packs down small for transport.",
            "Sweat-wicking and quick drying.",
            "Non-slip grip for safer training.",
        ),
        uses=(
            "home workouts",
            "weekend hikes",
            "the daily commute by bike",
            "family camping trips",
        ),
        age_tilt=(1.3, 1.4, 1.2, 1.0, 0.7, 0.5),
        region_tilt=(1.0, 1.0, 0.9, 1.1, 0.9, 1.0, 1.5, 1.3),
        device_tilt=(1.1, 1.0, 0.8),
    ),
    TopCategory(
        name="Toys & Games",
        leaves=(
            Leaf("Board Games", 28.0, ("Board Game", "Card Game", "Strategy Game"), "toys"),
            Leaf("Building Sets", 45.0, ("Building Set", "Construction Kit", "Brick Set"), "toys"),
            Leaf("Dolls & Figures", 22.0, ("Doll", "Action Figure", "Dolls House"), "toys"),
            Leaf(
                "Outdoor Toys",
                40.0,
                ("Trampoline", "Paddling Pool", "Water Blaster", "Swing Set"),
                "hot",
            ),
            Leaf("Puzzles", 15.0, ("Jigsaw Puzzle", "Puzzle Cube", "Brain Teaser"), "autumn"),
            Leaf(
                "Baby Toys", 18.0, ("Rattle", "Stacking Rings", "Activity Gym", "Soft Toy"), "flat"
            ),
        ),
        adjectives=(
            "Educational",
            "Colourful",
            "Award-Winning",
            "Interactive",
            "Classic",
            "Family",
            "Creative",
            "Collectable",
        ),
        materials=("Plastic", "Wood", "Cardboard", "Plush"),
        features=(
            "Suitable for ages three and up.",
            "Sparks imagination and creativity.",
            "Safety tested to European standards.",
            "Hours of screen-free fun.",
        ),
        uses=(
            "rainy afternoons indoors",
            "family game nights",
            "birthday parties",
            "stocking fillers",
        ),
        age_tilt=(0.4, 1.4, 1.8, 1.0, 0.8, 0.8),
        region_tilt=(1.0, 1.0, 1.1, 1.0, 1.1, 0.9, 1.0, 1.0),
        device_tilt=(1.0, 0.9, 1.3),
    ),
    TopCategory(
        name="Kitchen",
        leaves=(
            Leaf("Cookware", 50.0, ("Frying Pan", "Saucepan Set", "Casserole Dish", "Wok"), "flat"),
            Leaf("Kettles & Toasters", 38.0, ("Kettle", "Toaster", "Breakfast Set"), "flat"),
            Leaf(
                "Coffee Machines",
                160.0,
                ("Coffee Machine", "Espresso Maker", "Milk Frother", "Coffee Grinder"),
                "gift_mild",
            ),
            Leaf(
                "Knives",
                40.0,
                ("Chef Knife", "Knife Block", "Santoku Knife", "Knife Sharpener"),
                "gift_mild",
            ),
            Leaf(
                "Barbecues",
                150.0,
                ("Charcoal Barbecue", "Gas Barbecue", "Pizza Oven", "Grill Tool Set"),
                "hot",
            ),
            Leaf(
                "Tableware",
                32.0,
                ("Dinner Set", "Mug Set", "Serving Bowl", "Glassware Set"),
                "gift_mild",
            ),
        ),
        adjectives=(
            "Non-Stick",
            "Professional",
            "Dishwasher-Safe",
            "Compact",
            "Stylish",
            "Heavy-Gauge",
            "Everyday",
            "Chef's",
        ),
        materials=("Stainless Steel", "Cast Iron", "Ceramic", "Glass", "Bamboo"),
        features=(
            "Heats evenly for perfect results.",
            "Dishwasher safe for easy cleaning.",
            "Suitable for all hob types.",
            "Ergonomic handle for a secure grip.",
        ),
        uses=(
            "quick weekday dinners",
            "weekend baking",
            "entertaining friends",
            "the perfect morning brew",
        ),
        age_tilt=(0.6, 1.1, 1.2, 1.2, 1.2, 1.1),
        region_tilt=(1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 0.9, 1.0),
        device_tilt=(0.9, 1.1, 1.2),
    ),
    TopCategory(
        name="Books & Media",
        leaves=(
            Leaf(
                "Fiction",
                10.0,
                ("Novel", "Paperback", "Thriller", "Short Story Collection"),
                "flat",
            ),
            Leaf("Cookbooks", 18.0, ("Cookbook", "Recipe Book", "Baking Book"), "gift_mild"),
            Leaf("Children's Books", 8.0, ("Picture Book", "Story Book", "Activity Book"), "toys"),
            Leaf("Vinyl Records", 24.0, ("Vinyl Album", "Box Set", "Record"), "gift_mild"),
            Leaf("Video Games", 45.0, ("Video Game", "Game Controller", "Gaming Headset"), "gifts"),
            Leaf(
                "Stationery",
                9.0,
                ("Notebook Journal", "Pen Set", "Planner", "Desk Organiser"),
                "school",
            ),
        ),
        adjectives=(
            "Bestselling",
            "Illustrated",
            "Limited-Edition",
            "Deluxe",
            "Collector's",
            "Pocket",
            "Hardback",
            "Signed",
        ),
        materials=("Paper", "Vinyl", "Plastic", "Leather"),
        features=(
            "A critically acclaimed favourite.",
            "Beautifully printed and bound.",
            "Includes exclusive bonus content.",
            "Loved by readers and reviewers.",
        ),
        uses=(
            "cosy nights in",
            "the summer holidays",
            "the daily commute",
            "a book lover's wish list",
        ),
        age_tilt=(1.0, 0.9, 0.9, 1.0, 1.2, 1.6),
        region_tilt=(1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1, 1.2),
        device_tilt=(0.9, 1.0, 1.4),
    ),
    TopCategory(
        name="Heating & Cooling",
        leaves=(
            Leaf(
                "Electric Heaters",
                65.0,
                ("Oil Radiator", "Fan Heater", "Convector Heater", "Panel Heater"),
                "winter",
            ),
            Leaf(
                "Electric Blankets",
                45.0,
                ("Electric Blanket", "Heated Throw", "Heated Mattress Pad"),
                "winter",
            ),
            Leaf("Fans", 40.0, ("Tower Fan", "Desk Fan", "Pedestal Fan", "Ceiling Fan"), "hot"),
            Leaf(
                "Air Conditioners",
                280.0,
                ("Portable Air Conditioner", "Air Cooler", "Split Air Conditioner"),
                "hot",
            ),
            Leaf("Dehumidifiers", 150.0, ("Dehumidifier", "Air Purifier", "Humidifier"), "autumn"),
            Leaf(
                "Hot Water Bottles", 14.0, ("Hot Water Bottle", "Heat Pack", "Wheat Bag"), "winter"
            ),
        ),
        adjectives=(
            "Energy-Efficient",
            "Quiet",
            "Oscillating",
            "Thermostatic",
            "Portable",
            "Remote-Controlled",
            "Low-Energy",
            "Powerful",
        ),
        materials=("Plastic", "Steel", "Fleece", "Rubber", "Aluminium"),
        features=(
            "Whisper-quiet operation day and night.",
            "Built-in timer and eco mode.",
            "Overheat protection for peace of mind.",
            "Warms up or cools down in seconds.",
        ),
        uses=(
            "chilly winter evenings",
            "heatwaves and hot nights",
            "damp bedrooms",
            "the home office",
        ),
        age_tilt=(0.5, 0.8, 1.0, 1.2, 1.5, 1.8),
        region_tilt=(1.2, 0.8, 1.0, 0.9, 1.0, 0.8, 1.7, 1.3),
        device_tilt=(0.9, 1.2, 1.0),
    ),
    TopCategory(
        name="Gifts",
        leaves=(
            Leaf("Gift Sets", 30.0, ("Gift Set", "Pamper Set", "Gift Box"), "gifts"),
            Leaf("Greeting Cards", 4.0, ("Greeting Card", "Card Pack", "Gift Tag Set"), "gifts"),
            Leaf("Candles", 18.0, ("Scented Candle", "Candle Set", "Reed Diffuser"), "gifts"),
            Leaf(
                "Personalised Gifts",
                25.0,
                ("Engraved Keyring", "Photo Mug", "Name Necklace", "Custom Print"),
                "gifts",
            ),
            Leaf("Gift Hampers", 55.0, ("Food Hamper", "Wine Hamper", "Chocolate Hamper"), "gifts"),
            Leaf(
                "Party Supplies", 12.0, ("Balloon Kit", "Party Banner", "Tableware Pack"), "summer"
            ),
        ),
        adjectives=(
            "Luxury",
            "Handmade",
            "Personalised",
            "Festive",
            "Thoughtful",
            "Charming",
            "Keepsake",
            "Boutique",
        ),
        materials=("Wax", "Glass", "Paper", "Silver", "Wicker"),
        features=(
            "Arrives beautifully gift wrapped.",
            "Handmade by independent makers.",
            "Add a personal message at checkout.",
            "Delivered in a keepsake box.",
        ),
        uses=(
            "birthdays and anniversaries",
            "Christmas morning",
            "saying thank you",
            "a last-minute present",
        ),
        age_tilt=(1.0, 1.1, 1.1, 1.0, 1.0, 1.0),
        region_tilt=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        device_tilt=(1.2, 0.9, 1.0),
    ),
)

COLORS: tuple[str, ...] = (
    "Black",
    "White",
    "Grey",
    "Navy",
    "Sage Green",
    "Terracotta",
    "Cream",
    "Charcoal",
    "Red",
    "Blue",
    "Blush Pink",
    "Mustard",
    "Natural Oak",
    "Silver",
    "Rose Gold",
    "Teal",
)

BRAND_PREFIXES: tuple[str, ...] = (
    "Nord",
    "Hart",
    "Ash",
    "Bright",
    "Cedar",
    "Duns",
    "Elm",
    "Fox",
    "Glen",
    "Hale",
    "Iver",
    "Juno",
    "Kes",
    "Lark",
    "Mill",
    "Nova",
    "Oak",
    "Pem",
    "Quill",
    "Rowan",
    "Stan",
    "Thorn",
    "Ul",
    "Vale",
    "Wren",
    "Yar",
    "Zeph",
    "Bel",
    "Cor",
    "Dal",
)
BRAND_SUFFIXES: tuple[str, ...] = (
    "vik",
    "well",
    "ford",
    "wood",
    "ly",
    "ton",
    "mere",
    "a",
    "ora",
    "field",
    "by",
    "stone",
    "co",
    "ix",
    "ham",
    "ridge",
    "dale",
    "worth",
    "line",
    "haus",
)
TIER_NAMES: tuple[str, ...] = ("budget", "mid", "premium")
TIER_TAGLINES: tuple[tuple[str, ...], ...] = (
    ("great everyday value", "honest prices", "no-fuss essentials"),
    ("reliable quality", "thoughtful design", "dependable everyday kit"),
    ("premium craftsmanship", "luxury materials", "award-winning design"),
)
MATERIAL_PHRASES: tuple[str, ...] = (
    " made from ",
    " crafted in ",
    " finished in ",
)
OPENERS: tuple[str, ...] = ("This ", "Our ", "The ")


@dataclass(frozen=True)
class Taxonomy:
    """Flat arrays describing the category tree (leaf ids are contiguous within an L1)."""

    l1_names: tuple[str, ...]
    leaf_names: tuple[str, ...]
    leaf_l1: np.ndarray
    leaf_base_price: np.ndarray
    leaf_season: np.ndarray
    materials: tuple[str, ...]
    l1_materials: tuple[np.ndarray, ...]

    @property
    def n_leaves(self) -> int:
        """Number of leaf categories."""
        return len(self.leaf_names)

    @property
    def n_l1(self) -> int:
        """Number of top-level categories."""
        return len(self.l1_names)


def build_taxonomy(categories: tuple[TopCategory, ...] = CATEGORIES) -> Taxonomy:
    """Flatten the category tree into arrays.

    Args:
        categories: The L1 categories with their leaves.

    Returns:
        The taxonomy, with a (n_leaves, 12) monthly season table.

    """
    leaves = [(i, leaf) for i, top in enumerate(categories) for leaf in top.leaves]
    names = tuple(leaf.name for _, leaf in leaves)
    if len(set(names)) != len(names):
        raise ValueError("leaf category names must be unique across the tree")
    materials = tuple(sorted({m for top in categories for m in top.materials}))
    index = {m: i for i, m in enumerate(materials)}
    return Taxonomy(
        l1_names=tuple(top.name for top in categories),
        leaf_names=names,
        leaf_l1=np.array([i for i, _ in leaves], dtype=np.int64),
        leaf_base_price=np.array([leaf.base_price for _, leaf in leaves]),
        leaf_season=np.array([SEASON_PROFILES[leaf.season] for _, leaf in leaves]),
        materials=materials,
        l1_materials=tuple(
            np.array([index[m] for m in top.materials], dtype=np.int64) for top in categories
        ),
    )


def brand_names(rng: np.random.Generator, n_brands: int) -> list[str]:
    """Draw distinct brand names from syllable combinations.

    Args:
        rng: Random generator.
        n_brands: How many names (at most len(prefixes) * len(suffixes)).

    Returns:
        A list of unique, capitalised brand names.

    """
    n_combos = len(BRAND_PREFIXES) * len(BRAND_SUFFIXES)
    if n_brands > n_combos:
        raise ValueError(f"n_brands must be <= {n_combos}, got {n_brands}")
    picks = rng.choice(n_combos, size=n_brands, replace=False)
    prefixes = np.array(BRAND_PREFIXES)[picks // len(BRAND_SUFFIXES)]
    suffixes = np.array(BRAND_SUFFIXES)[picks % len(BRAND_SUFFIXES)]
    return list(np.char.add(prefixes, suffixes))


@dataclass(frozen=True)
class TextInputs:
    """Per-product indices needed to write titles and descriptions."""

    leaf: np.ndarray
    brand: np.ndarray
    brand_tier: np.ndarray
    color: np.ndarray
    material: np.ndarray


def take_strings(values: list[str] | tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Gather strings by index as an Arrow array (vectorised)."""
    return pa.array(list(values), type=pa.string()).take(pa.array(index))


def _per_l1_choice(
    rng: np.random.Generator, leaf_l1: np.ndarray, pools: list[tuple[str, ...]]
) -> tuple[list[str], np.ndarray]:
    """Pick one entry per product from its L1 pool; returns flat pool and indices."""
    sizes = np.array([len(p) for p in pools])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = np.floor(rng.random(leaf_l1.size) * sizes[leaf_l1]).astype(np.int64)
    return [s for pool in pools for s in pool], offsets[leaf_l1] + local


@dataclass(frozen=True)
class _Words:
    """Per-product words as Arrow string arrays."""

    brand: pa.Array
    adjective: pa.Array
    noun: pa.Array
    material: pa.Array
    color: pa.Array


def _words(
    rng: np.random.Generator,
    taxonomy: Taxonomy,
    brands: list[str],
    items: TextInputs,
    categories: tuple[TopCategory, ...],
) -> _Words:
    """Pick a noun of each product's leaf and an adjective of its L1; gather other words."""
    leaf_nouns = [leaf.nouns for top in categories for leaf in top.leaves]
    noun_pool, noun_idx = _per_l1_choice(rng, items.leaf, leaf_nouns)
    leaf_l1 = taxonomy.leaf_l1[items.leaf]
    adj_pool, adj_idx = _per_l1_choice(rng, leaf_l1, [top.adjectives for top in categories])
    return _Words(
        brand=take_strings(brands, items.brand),
        adjective=take_strings(adj_pool, adj_idx),
        noun=take_strings(noun_pool, noun_idx),
        material=take_strings(taxonomy.materials, items.material),
        color=take_strings(COLORS, items.color),
    )


def _first_sentence(rng: np.random.Generator, words: _Words) -> pa.Array:
    """'This <adjective> <noun> made from <material> in <colour>.' with varied connectors."""
    n = len(words.noun)
    opener = take_strings(OPENERS, rng.integers(0, len(OPENERS), n))
    made = take_strings(MATERIAL_PHRASES, rng.integers(0, len(MATERIAL_PHRASES), n))
    parts = [
        opener,
        pc.utf8_lower(words.adjective),
        " ",
        pc.utf8_lower(words.noun),
        made,
        pc.utf8_lower(words.material),
        " in ",
        pc.utf8_lower(words.color),
        ".",
    ]
    return pc.binary_join_element_wise(*parts, "")


def _maybe(rng: np.random.Generator, values: pa.Array, share: float) -> pa.Array:
    """Keep each value with probability ``share``, else null."""
    keep = pa.array(rng.random(len(values)) < share)
    return pc.if_else(keep, values, pa.scalar(None, pa.string()))


def build_texts(
    rng: np.random.Generator,
    taxonomy: Taxonomy,
    brands: list[str],
    items: TextInputs,
    categories: tuple[TopCategory, ...] = CATEGORIES,
) -> tuple[pa.Array, pa.Array]:
    """Write an English title and a 2-4 sentence description for every product.

    Args:
        rng: Random generator.
        taxonomy: Flattened category tree.
        brands: Brand names indexed by brand id.
        items: Per-product leaf, brand, tier, colour and material indices.
        categories: The category vocabulary the taxonomy was built from.

    Returns:
        Arrow string arrays (titles, descriptions).
    """
    words = _words(rng, taxonomy, brands, items, categories)
    title = pc.binary_join_element_wise(
        pc.binary_join_element_wise(words.brand, words.adjective, words.material, words.noun, " "),
        words.color,
        ", ",
    )
    # Sentences: what it is, a feature, an optional use case and an optional brand line
    leaf_l1 = taxonomy.leaf_l1[items.leaf]
    feat_pool, feat_idx = _per_l1_choice(rng, leaf_l1, [top.features for top in categories])
    use_pool, use_idx = _per_l1_choice(rng, leaf_l1, [top.uses for top in categories])
    tag_pool, tag_idx = _per_l1_choice(rng, items.brand_tier, list(TIER_TAGLINES))
    use = pc.binary_join_element_wise("Perfect for ", take_strings(use_pool, use_idx), ".", "")
    tagline = take_strings(tag_pool, tag_idx)
    brand_line = pc.binary_join_element_wise("From ", words.brand, ", known for ", tagline, ".", "")
    description = pc.binary_join_element_wise(
        _first_sentence(rng, words),
        take_strings(feat_pool, feat_idx),
        _maybe(rng, use, 0.6),
        _maybe(rng, brand_line, 0.5),
        " ",
        null_handling="skip",
    )
    return title, description
