toString { __toString = self: 42; }
