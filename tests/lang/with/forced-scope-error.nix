with (throw "forced scope"); x
