"""HTTP conventions shared by every blueprint: problems, request ids, validation, paging."""
