import SCMGraph

/// Errors of sampling (the library's one error type, `SCMError`): errors of the layers below
/// (model loading, compilation, optimization) arrive as they were thrown, kind included.
public typealias SamplerError = SCMError
