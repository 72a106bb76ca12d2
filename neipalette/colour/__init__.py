"""Pixels and colours: safe image reading (`imaging`), CIELAB conversion and the Ou & Luo (2006) harmony model
(`harmony`), dominant garment colour extraction (`extract`). May import `neipalette.errors` and `seeding` only."""
