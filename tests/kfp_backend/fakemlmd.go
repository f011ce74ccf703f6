package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"

	pb "github.com/kubeflow/pipelines/third_party/ml-metadata/go/ml_metadata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// memoryMLMD is an in-memory MLMD service: just the calls the backend's metadata.Client makes
// for contexts and executions, served over gRPC on a loopback port so that the client under
// test is the backend's own, connection included (as upstream's tests replace the service in
// backend/src/v2/metadata/client_update_dag_state_test.go at 2.17.0).
type memoryMLMD struct {
	pb.UnimplementedMetadataStoreServiceServer
	mu             sync.Mutex
	next           int64
	executionTypes map[string]int64
	contextTypes   map[string]*pb.ContextType
	contexts       map[int64]*pb.Context
	parents        map[int64][]int64
	executions     map[int64]*pb.Execution
	attributions   map[int64][]int64 // execution -> contexts
}

func newMemoryMLMD() *memoryMLMD {
	return &memoryMLMD{
		executionTypes: map[string]int64{},
		contextTypes:   map[string]*pb.ContextType{},
		contexts:       map[int64]*pb.Context{},
		parents:        map[int64][]int64{},
		executions:     map[int64]*pb.Execution{},
		attributions:   map[int64][]int64{},
	}
}

// serve starts the service on 127.0.0.1 and returns its port and a stop function.
func (m *memoryMLMD) serve() (string, func(), error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("in-memory MLMD: %v", err)
	}
	server := grpc.NewServer()
	pb.RegisterMetadataStoreServiceServer(server, m)
	go func() { _ = server.Serve(listener) }()
	port := strconv.Itoa(listener.Addr().(*net.TCPAddr).Port)
	return port, server.Stop, nil
}

func (m *memoryMLMD) id() int64 {
	m.next++
	return m.next
}

func (m *memoryMLMD) PutExecutionType(_ context.Context, req *pb.PutExecutionTypeRequest) (*pb.PutExecutionTypeResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := req.GetExecutionType().GetName()
	if _, ok := m.executionTypes[name]; !ok {
		m.executionTypes[name] = m.id()
	}
	return &pb.PutExecutionTypeResponse{TypeId: proto.Int64(m.executionTypes[name])}, nil
}

func (m *memoryMLMD) GetContextType(_ context.Context, req *pb.GetContextTypeRequest) (*pb.GetContextTypeResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	found, ok := m.contextTypes[req.GetTypeName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "context type %q not found", req.GetTypeName())
	}
	return &pb.GetContextTypeResponse{ContextType: found}, nil
}

func (m *memoryMLMD) PutContextType(_ context.Context, req *pb.PutContextTypeRequest) (*pb.PutContextTypeResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := req.GetContextType().GetName()
	if _, ok := m.contextTypes[name]; !ok {
		m.contextTypes[name] = &pb.ContextType{Id: proto.Int64(m.id()), Name: proto.String(name)}
	}
	return &pb.PutContextTypeResponse{TypeId: m.contextTypes[name].Id}, nil
}

func (m *memoryMLMD) typeName(typeID int64) string {
	for name, t := range m.contextTypes {
		if t.GetId() == typeID {
			return name
		}
	}
	return ""
}

func (m *memoryMLMD) GetContextByTypeAndName(_ context.Context, req *pb.GetContextByTypeAndNameRequest) (*pb.GetContextByTypeAndNameResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.contexts {
		if c.GetName() == req.GetContextName() && m.typeName(c.GetTypeId()) == req.GetTypeName() {
			return &pb.GetContextByTypeAndNameResponse{Context: c}, nil
		}
	}
	return &pb.GetContextByTypeAndNameResponse{}, nil // MLMD answers "none" without an error
}

func (m *memoryMLMD) PutContexts(_ context.Context, req *pb.PutContextsRequest) (*pb.PutContextsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []int64
	for _, c := range req.GetContexts() {
		c = proto.Clone(c).(*pb.Context)
		if c.Id == nil {
			c.Id = proto.Int64(m.id())
		}
		m.contexts[c.GetId()] = c
		ids = append(ids, c.GetId())
	}
	return &pb.PutContextsResponse{ContextIds: ids}, nil
}

func (m *memoryMLMD) GetContextsByID(_ context.Context, req *pb.GetContextsByIDRequest) (*pb.GetContextsByIDResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []*pb.Context
	for _, id := range req.GetContextIds() {
		if c, ok := m.contexts[id]; ok {
			found = append(found, c)
		}
	}
	return &pb.GetContextsByIDResponse{Contexts: found}, nil
}

func (m *memoryMLMD) GetParentContextsByContext(_ context.Context, req *pb.GetParentContextsByContextRequest) (*pb.GetParentContextsByContextResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []*pb.Context
	for _, id := range m.parents[req.GetContextId()] {
		found = append(found, m.contexts[id])
	}
	return &pb.GetParentContextsByContextResponse{Contexts: found}, nil
}

func (m *memoryMLMD) PutParentContexts(_ context.Context, req *pb.PutParentContextsRequest) (*pb.PutParentContextsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range req.GetParentContexts() {
		m.parents[p.GetChildId()] = append(m.parents[p.GetChildId()], p.GetParentId())
	}
	return &pb.PutParentContextsResponse{}, nil
}

func (m *memoryMLMD) PutExecution(_ context.Context, req *pb.PutExecutionRequest) (*pb.PutExecutionResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := proto.Clone(req.GetExecution()).(*pb.Execution)
	if e.Id == nil {
		e.Id = proto.Int64(m.id())
	} else if _, ok := m.executions[e.GetId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "execution %d not found", e.GetId())
	}
	m.executions[e.GetId()] = e
	var contextIDs []int64
	for _, c := range req.GetContexts() {
		contextIDs = append(contextIDs, c.GetId())
		known := false
		for _, have := range m.attributions[e.GetId()] {
			known = known || have == c.GetId()
		}
		if !known {
			m.attributions[e.GetId()] = append(m.attributions[e.GetId()], c.GetId())
		}
	}
	return &pb.PutExecutionResponse{ExecutionId: e.Id, ContextIds: contextIDs}, nil
}

func (m *memoryMLMD) GetExecutionsByID(_ context.Context, req *pb.GetExecutionsByIDRequest) (*pb.GetExecutionsByIDResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []*pb.Execution
	for _, id := range req.GetExecutionIds() {
		if e, ok := m.executions[id]; ok {
			found = append(found, e)
		}
	}
	return &pb.GetExecutionsByIDResponse{Executions: found}, nil
}

func (m *memoryMLMD) GetExecutionByTypeAndName(_ context.Context, req *pb.GetExecutionByTypeAndNameRequest) (*pb.GetExecutionByTypeAndNameResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	typeID := m.executionTypes[req.GetTypeName()]
	for _, e := range m.executions {
		if e.GetTypeId() == typeID && e.GetName() == req.GetExecutionName() {
			return &pb.GetExecutionByTypeAndNameResponse{Execution: e}, nil
		}
	}
	return &pb.GetExecutionByTypeAndNameResponse{}, nil
}

// parentFilter is the one filter query metadata.Client sends (GetExecutionsInDAG).
var parentFilter = regexp.MustCompile(`^custom_properties\.parent_dag_id\.int_value = (\d+)$`)

func (m *memoryMLMD) GetExecutionsByContext(_ context.Context, req *pb.GetExecutionsByContextRequest) (*pb.GetExecutionsByContextResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	query := req.GetOptions().GetFilterQuery()
	parent := int64(-1)
	if query != "" {
		match := parentFilter.FindStringSubmatch(query)
		if match == nil {
			return nil, status.Errorf(codes.Unimplemented, "in-memory MLMD: filter %q", query)
		}
		parent, _ = strconv.ParseInt(match[1], 10, 64)
	}
	var found []*pb.Execution
	for id := int64(1); id <= m.next; id++ {
		e, ok := m.executions[id]
		if !ok {
			continue
		}
		inContext := false
		for _, c := range m.attributions[id] {
			inContext = inContext || c == req.GetContextId()
		}
		value, has := e.GetCustomProperties()["parent_dag_id"]
		if inContext && (parent < 0 || (has && value.GetIntValue() == parent)) {
			found = append(found, e)
		}
	}
	return &pb.GetExecutionsByContextResponse{Executions: found}, nil
}

func (m *memoryMLMD) GetContextsByExecution(_ context.Context, req *pb.GetContextsByExecutionRequest) (*pb.GetContextsByExecutionResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []*pb.Context
	for _, id := range m.attributions[req.GetExecutionId()] {
		found = append(found, m.contexts[id])
	}
	return &pb.GetContextsByExecutionResponse{Contexts: found}, nil
}
