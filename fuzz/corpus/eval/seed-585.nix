"from a"
