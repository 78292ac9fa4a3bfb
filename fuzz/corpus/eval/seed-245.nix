../paths/fixtures
