toString { outPath = "/o"; __toString = _: "ts"; }
