/* Every oneDNN implementation of the paper CNN's convolutions, pass by pass and layout by
   layout, timed on one thread: the measurement behind MapLayoutChoice's AVX2 ranking
   (RESULTS.md, "Layouts by instruction set"). It walks oneDNN's primitive-descriptor iterator,
   so it also shows the implementations oneDNN would take after its first choice (gemm:jit,
   jit:sse41); reference ones are skipped.

     gcc -O2 bench/onednn_conv_passes.c -o /tmp/conv-passes -ldnnl && OMP_NUM_THREADS=1 /tmp/conv-passes
     FIRST=1 OMP_NUM_THREADS=1 /tmp/conv-passes        # the first layer, 1 -> 32 channels at 28x28
     ONEDNN_MAX_CPU_ISA=AVX2 ...                        # the AVX2 path of an AVX-512 machine

   pass 0 is forward, 1 backward weights, 2 backward data; inputs are zeros (the time of these
   kernels does not depend on the values). */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
#define CK(x) do{dnnl_status_t st_=(x); if(st_!=dnnl_success){fprintf(stderr,"%s: %d\n",#x,st_); exit(1);}}while(0)
dnnl_engine_t eng; dnnl_stream_t st;
void run(int N,int IC,int OC,int H, dnnl_format_tag_t tag, int pass){
  dnnl_dims_t src={N,IC,H,H}, wei={OC,IC,3,3}, bia={OC}, dst={N,OC,H,H}, strides={1,1}, pl={1,1}, pr={1,1};
  dnnl_memory_desc_t s,w,b,d; 
  CK(dnnl_memory_desc_init_by_tag(&s,4,src,dnnl_f32,tag));
  CK(dnnl_memory_desc_init_by_tag(&w,4,wei,dnnl_f32,dnnl_format_tag_any));
  CK(dnnl_memory_desc_init_by_tag(&b,1,bia,dnnl_f32,dnnl_x));
  CK(dnnl_memory_desc_init_by_tag(&d,4,dst,dnnl_f32,tag));
  dnnl_convolution_desc_t fd; CK(dnnl_convolution_forward_desc_init(&fd,dnnl_forward_training,dnnl_convolution_direct,&s,&w,&b,&d,strides,pl,pr));
  dnnl_primitive_desc_t fpd; CK(dnnl_primitive_desc_create(&fpd,&fd,NULL,eng,NULL));
  dnnl_convolution_desc_t cd; dnnl_primitive_desc_t hint=NULL; 
  if(pass==0){cd=fd;}
  else if(pass==1){CK(dnnl_convolution_backward_weights_desc_init(&cd,dnnl_convolution_direct,&s,&w,&b,&d,strides,pl,pr)); hint=fpd;}
  else {CK(dnnl_convolution_backward_data_desc_init(&cd,dnnl_convolution_direct,&s,&w,&d,strides,pl,pr)); hint=fpd;}
  dnnl_primitive_desc_iterator_t it; CK(dnnl_primitive_desc_iterator_create(&it,&cd,NULL,eng,hint));
  do {
    dnnl_primitive_desc_t pd=dnnl_primitive_desc_iterator_fetch(it);
    const char* name; dnnl_primitive_desc_query(pd,dnnl_query_impl_info_str,0,&name);
    if(strstr(name,"ref")){dnnl_primitive_desc_destroy(pd); continue;}
    // memories per the pd's wanted mds
    dnnl_query_t qs[3][3]={{dnnl_query_src_md,dnnl_query_weights_md,dnnl_query_dst_md},{dnnl_query_src_md,dnnl_query_diff_weights_md,dnnl_query_diff_dst_md},{dnnl_query_diff_src_md,dnnl_query_weights_md,dnnl_query_diff_dst_md}};
    int args[3][3]={{DNNL_ARG_SRC,DNNL_ARG_WEIGHTS,DNNL_ARG_DST},{DNNL_ARG_SRC,DNNL_ARG_DIFF_WEIGHTS,DNNL_ARG_DIFF_DST},{DNNL_ARG_DIFF_SRC,DNNL_ARG_WEIGHTS,DNNL_ARG_DIFF_DST}};
    dnnl_exec_arg_t ea[5]; int na=0; dnnl_memory_t mems[5];
    for(int k=0;k<3;k++){const dnnl_memory_desc_t* md=dnnl_primitive_desc_query_md(pd,qs[pass][k],0); CK(dnnl_memory_create(&mems[na],md,eng,DNNL_MEMORY_ALLOCATE)); void* p; dnnl_memory_get_data_handle(mems[na],&p); memset(p,0,dnnl_memory_desc_get_size(md)); ea[na].arg=args[pass][k]; ea[na].memory=mems[na]; na++;}
    if(pass<2){const dnnl_memory_desc_t* md=dnnl_primitive_desc_query_md(pd,pass==0?dnnl_query_weights_md:dnnl_query_diff_weights_md,1); CK(dnnl_memory_create(&mems[na],md,eng,DNNL_MEMORY_ALLOCATE)); ea[na].arg=pass==0?DNNL_ARG_BIAS:DNNL_ARG_DIFF_BIAS; ea[na].memory=mems[na]; na++;}
    const dnnl_memory_desc_t* wmd=dnnl_primitive_desc_query_md(pd,pass==1?dnnl_query_diff_weights_md:dnnl_query_weights_md,0);
    dnnl_primitive_t prim; CK(dnnl_primitive_create(&prim,pd));
    for(int r=0;r<3;r++){dnnl_primitive_execute(prim,st,na,ea);} dnnl_stream_wait(st);
    double t0=now(); int R=10; for(int r=0;r<R;r++){dnnl_primitive_execute(prim,st,na,ea);} dnnl_stream_wait(st); double t=(now()-t0)/R;
    double fl=2.0*N*OC*H*H*IC*9;
    printf("%s IC%d OC%d H%d pass%d %-20s wei_fmt_ndims %d %.3f ms %.1f GFLOP/s\n", tag==dnnl_nhwc?"nhwc":tag==dnnl_nChw8c?"nChw8c":"nchw", IC,OC,H,pass,name,wmd->format_desc.blocking.inner_nblks, t*1e3, fl/t/1e9);
    dnnl_primitive_destroy(prim); for(int k=0;k<na;k++) dnnl_memory_destroy(mems[k]);
    dnnl_primitive_desc_destroy(pd);
  } while(dnnl_primitive_desc_iterator_next(it)==dnnl_success);
}
int main(){ CK(dnnl_engine_create(&eng,dnnl_cpu,0)); CK(dnnl_stream_create(&st,eng,dnnl_stream_default_flags));
 dnnl_format_tag_t tags[3]={dnnl_nhwc,dnnl_nChw8c,dnnl_nchw};
 if(getenv("FIRST")){for(int t=0;t<3;t++) for(int p=0;p<2;p++) run(128,1,32,28,tags[t],p); return 0;}
 for(int t=0;t<3;t++) for(int p=0;p<3;p++){ run(128,32,64,14,tags[t],p); run(128,64,128,7,tags[t],p);}
 return 0;}
