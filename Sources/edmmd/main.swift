print("edmmd: not built yet")
