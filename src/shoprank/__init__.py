"""shoprank: feature-store-centric product recommendations for e-commerce."""

__version__ = "0.1.0"
