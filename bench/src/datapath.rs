//! The pods the data-path benchmarks measure between (`bench-services` on netns nodes,
//! `bench-vm` on VM nodes): a busybox server pod on node2 behind the Service `bench-srv`
//! (iperf3 on 5201, the request/response echo on 7000) and a client pod on node1. The
//! measuring programs run in the pods' network namespaces, entered with nsenter.

/// The manifest: both pods and the Service.
pub const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: bench-srv, namespace: default, labels: {app: bench-srv}}
spec:
  nodeName: node2
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: bench-cli, namespace: default}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: bench-srv, namespace: default}
spec:
  selector: {app: bench-srv}
  ports:
  - {name: iperf, port: 5201, targetPort: 5201}
  - {name: rr, port: 7000, targetPort: 7000}
"#;
