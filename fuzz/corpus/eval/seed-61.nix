{ __toString = self: "ts"; a = 1; }
