toString { outPath = "/out"; }
