let p = ./strings; in "${toString p}"
