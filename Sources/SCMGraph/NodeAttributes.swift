/// A node's attributes read with their types checked: the one reader behind the ops' builders
/// (`OpContext`), their derivative rules and the passes. An attribute of the wrong type is an
/// `.invalidAttribute` error at `label`, never a silent default.
extension Node {
    private func wrongType(_ name: String, _ want: String, _ a: Attribute, _ label: String) -> SCMError {
        SCMError(.invalidAttribute, at: label, "attribute '\(name)' must be \(want), is \(a.value.typeName)")
    }

    /// INT attribute `name`, `def` when absent.
    public func int(_ name: String, _ def: Int, at label: String) throws -> Int {
        guard let a = attribute(name) else { return def }
        guard case .int(let v) = a.value else { throw wrongType(name, "INT", a, label) }
        return v
    }

    /// FLOAT attribute `name` (an INT is accepted), `def` when absent.
    public func float(_ name: String, _ def: Float, at label: String) throws -> Float {
        guard let a = attribute(name) else { return def }
        switch a.value {
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: throw wrongType(name, "FLOAT", a, label)
        }
    }

    /// INTS attribute `name` (a single INT is accepted), nil when absent.
    public func ints(_ name: String, at label: String) throws -> [Int]? {
        guard let a = attribute(name) else { return nil }
        switch a.value {
        case .ints(let v): return v
        case .int(let v): return [v]
        default: throw wrongType(name, "INTS", a, label)
        }
    }

    /// FLOATS attribute `name` (a single FLOAT is accepted), nil when absent.
    public func floats(_ name: String, at label: String) throws -> [Float]? {
        guard let a = attribute(name) else { return nil }
        switch a.value {
        case .floats(let v): return v
        case .float(let v): return [v]
        default: throw wrongType(name, "FLOATS", a, label)
        }
    }

    /// STRING attribute `name`, `def` when absent.
    public func string(_ name: String, _ def: String, at label: String) throws -> String {
        guard let a = attribute(name) else { return def }
        guard let s = a.stringValue else { throw wrongType(name, "STRING", a, label) }
        return s
    }
}
