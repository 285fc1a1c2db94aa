// Structural verification of a model: names, definitions, acyclicity, opsets, metadata.
// Op-level rules (attribute kinds, shapes) belong to the op registry of the runtime.

extension Model {
    /// Throws the first structural problem found, if any.
    public func verify() throws {
        if let first = verificationErrors().first { throw first }
    }

    /// Every structural problem found, in a stable order.
    public func verificationErrors() -> [ModelError] {
        var errors: [ModelError] = []
        var domains = Set<String>()
        for o in opsetImports {
            let d = Model.canonicalDomain(o.domain)
            if !domains.insert(d).inserted {
                errors.append(ModelError(.invalidModel, at: "opset_import", "domain '\(o.domain)' is imported twice"))
            }
        }
        var keys = Set<String>()
        for e in metadata where !keys.insert(e.key).inserted {
            errors.append(ModelError(.duplicateName, at: "metadata_props", "key '\(e.key)' appears twice"))
        }
        for (i, n) in graph.nodes.enumerated() where !domains.contains(Model.canonicalDomain(n.domain)) {
            errors.append(ModelError(.invalidModel, at: n.label(index: i),
                                     "domain '\(n.domain)' is not in the model's opset_import"))
        }
        errors += graph.verificationErrors()
        return errors
    }
}

extension Graph {
    /// Every structural problem of this graph: empty or duplicated names, undefined values, cycles.
    public func verificationErrors() -> [ModelError] {
        var errors: [ModelError] = []
        var defined = Set<String>()
        var inputNames = Set<String>()
        for (i, v) in inputs.enumerated() {
            if v.name.isEmpty { errors.append(ModelError(.duplicateName, at: "graph input #\(i)", "has an empty name")) }
            else if !inputNames.insert(v.name).inserted {
                errors.append(ModelError(.duplicateName, at: "graph input #\(i) '\(v.name)'", "name is used by an earlier graph input"))
            }
        }
        defined = inputNames
        var initNames = Set<String>()
        for (i, t) in initializers.enumerated() {
            let name = t.meta.name
            if name.isEmpty { errors.append(ModelError(.duplicateName, at: "initializer #\(i)", "has an empty name")) }
            else if !initNames.insert(name).inserted {
                errors.append(ModelError(.duplicateName, at: "initializer #\(i) '\(name)'", "name is used by an earlier initializer"))
            }
            // An initializer may share its name with a graph input: it is then the input's default.
            defined.insert(name)
        }
        for (i, n) in nodes.enumerated() {
            if n.opType.isEmpty { errors.append(ModelError(.invalidModel, at: n.label(index: i), "has no op_type")) }
            var attrNames = Set<String>()
            for a in n.attributes {
                if a.name.isEmpty { errors.append(ModelError(.invalidAttribute, at: n.label(index: i), "has an attribute without a name")) }
                else if !attrNames.insert(a.name).inserted {
                    errors.append(ModelError(.invalidAttribute, at: n.label(index: i), "attribute '\(a.name)' is given twice"))
                }
            }
            for o in n.outputs where !o.isEmpty {
                if !defined.insert(o).inserted {
                    errors.append(ModelError(.duplicateName, at: n.label(index: i),
                                             "output '\(o)' is already defined by a graph input, initializer or another node"))
                }
            }
        }
        for (i, n) in nodes.enumerated() {
            for name in n.inputs where !name.isEmpty && !defined.contains(name) {
                errors.append(ModelError(.undefinedValue, at: n.label(index: i),
                                         "input '\(name)' is not defined by a graph input, initializer or node"))
            }
        }
        for (i, v) in outputs.enumerated() {
            if v.name.isEmpty { errors.append(ModelError(.invalidModel, at: "graph output #\(i)", "has an empty name")) }
            else if !defined.contains(v.name) {
                errors.append(ModelError(.undefinedValue, at: "graph output #\(i) '\(v.name)'", "is not produced by any node, input or initializer"))
            }
        }
        if errors.isEmpty {
            do { _ = try topologicalOrder() } catch let e as ModelError { errors.append(e) } catch {}
        }
        return errors
    }

    /// Node indices in an order where every node follows the producers of its inputs: the file
    /// order when that is already topological. Throws `.cycle` naming the nodes of a cycle.
    public func topologicalOrder() throws -> [Int] {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        // Iterative depth-first search, post-order; 0 = unvisited, 1 = on the stack, 2 = done.
        var state = [UInt8](repeating: 0, count: nodes.count)
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        var stack: [(node: Int, nextInput: Int)] = []
        for root in nodes.indices where state[root] == 0 {
            stack.append((root, 0))
            state[root] = 1
            while let top = stack.last {
                let n = nodes[top.node]
                if top.nextInput < n.inputs.count {
                    stack[stack.count - 1].nextInput += 1
                    guard let p = producer[n.inputs[top.nextInput]] else { continue }
                    switch state[p] {
                    case 0:
                        state[p] = 1
                        stack.append((p, 0))
                    case 1:
                        let start = stack.firstIndex { $0.node == p } ?? 0
                        let cycle = stack[start...].map { nodes[$0.node].label(index: $0.node) }
                        throw ModelError(.cycle, at: nodes[p].label(index: p),
                                         "nodes form a cycle (each reads an output of the next): " + (cycle + [cycle[0]]).joined(separator: " -> "))
                    default: break
                    }
                } else {
                    state[top.node] = 2
                    order.append(top.node)
                    stack.removeLast()
                }
            }
        }
        return order
    }
}
