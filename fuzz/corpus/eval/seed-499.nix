let n = 3; in throw "failed with ${toString n}"
