"string" 1
