@_exported import SCMGraph
@_exported import SCMRuntime
@_exported import SCMOptimize
