let base = 10; in ({ x ? base }: x) { }
