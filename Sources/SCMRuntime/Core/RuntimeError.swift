import SCMGraph

/// Errors of compiling and running plans (the library's one error type, `SCMError`).
public typealias RuntimeError = SCMError
