print("edmmctl: not built yet")
