"""NeiPalette: does a CNN judge outfit colour harmony better than chance on tiny datasets?"""

__version__ = "0.1.0"
