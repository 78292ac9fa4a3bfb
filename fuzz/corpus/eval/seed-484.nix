let v = 1; in throw "thrown from an imported file"
