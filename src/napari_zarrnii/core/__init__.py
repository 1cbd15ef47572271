"""Pure-Python core of napari-zarrnii: no napari and no Qt import anywhere below here."""
