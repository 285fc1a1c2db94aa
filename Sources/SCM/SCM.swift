@_exported import SCMGraph
@_exported import SCMRuntime
