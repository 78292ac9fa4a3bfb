let o = { __toString = _: "T"; }; in "a${o}b"
