{ outPath = "/some/out"; ignored = 1; }
