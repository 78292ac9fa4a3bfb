toString ./some/dir
