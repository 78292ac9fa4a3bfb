./base + "/child"
