print("edmm-sim: not built yet")
