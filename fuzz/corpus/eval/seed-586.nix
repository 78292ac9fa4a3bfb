secret + 1
