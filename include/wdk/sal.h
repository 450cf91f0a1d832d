/*
 * Source annotations (SAL 2 and the older __drv_ / __in forms) as empty
 * macros. They guide Microsoft's static analyser only; a driver compiled here
 * must still parse, so every name a callout commonly writes expands to
 * nothing. The older lower-case __in/__out forms are included because
 * Win7-era WFP samples use them; glibc's C headers never use those names.
 */
#ifndef OPENWFP_WDK_SAL_H
#define OPENWFP_WDK_SAL_H

/* Parameters */
#define _In_
#define _In_opt_
#define _In_z_
#define _In_opt_z_
#define _In_reads_(s)
#define _In_reads_opt_(s)
#define _In_reads_bytes_(s)
#define _In_reads_bytes_opt_(s)
#define _In_reads_z_(s)
#define _In_reads_or_z_(s)
#define _In_range_(l, h)
#define _Out_
#define _Out_opt_
#define _Out_writes_(s)
#define _Out_writes_opt_(s)
#define _Out_writes_z_(s)
#define _Out_writes_bytes_(s)
#define _Out_writes_bytes_opt_(s)
#define _Out_writes_to_(s, c)
#define _Out_writes_bytes_to_(s, c)
#define _Out_writes_bytes_all_(s)
#define _Out_writes_all_(s)
#define _Out_range_(l, h)
#define _Inout_
#define _Inout_opt_
#define _Inout_z_
#define _Inout_updates_(s)
#define _Inout_updates_opt_(s)
#define _Inout_updates_bytes_(s)
#define _Inout_updates_bytes_opt_(s)
#define _Outptr_
#define _Outptr_opt_
#define _Outptr_result_maybenull_
#define _Outptr_opt_result_maybenull_
#define _Outptr_result_nullonfailure_
#define _Outptr_result_buffer_(s)
#define _Outptr_result_bytebuffer_(s)
#define _Reserved_
#define _Frees_ptr_
#define _Frees_ptr_opt_
#define _Pre_notnull_
#define _Pre_maybenull_
#define _Pre_null_
#define _Pre_valid_
#define _Pre_satisfies_(e)
#define _Post_valid_
#define _Post_invalid_
#define _Post_ptr_invalid_
#define _Post_satisfies_(e)
#define _Post_writable_byte_size_(s)
#define _Post_maybenull_
#define _Post_notnull_
#define _Notnull_
#define _Maybenull_
#define _Null_terminated_
#define _NullNull_terminated_
#define _Literal_
#define _Const_
#define _Printf_format_string_
#define _Strict_type_match_
#define _Points_to_data_
#define _Pre_
#define _Post_
#define _Deref_pre_
#define _Deref_post_
#define _Deref_out_range_(l, h)
#define _Deref_in_range_(l, h)
#define _Deref_out_
#define _Valid_

/* Return values and functions */
#define _Check_return_
#define _Must_inspect_result_
#define _Success_(e)
#define _Return_type_success_(e)
#define _Ret_
#define _Ret_z_
#define _Ret_maybenull_
#define _Ret_notnull_
#define _Ret_range_(l, h)
#define _Ret_writes_(s)
#define _Ret_writes_bytes_(s)
#define _Ret_writes_maybenull_(s)
#define _Ret_writes_bytes_maybenull_(s)
#define _Result_nullonfailure_
#define _Result_zeroonfailure_
#define _Function_class_(n)
#define _Dispatch_type_(t)
#define _Use_decl_annotations_
#define _When_(c, a)
#define _At_(t, a)
#define _At_buffer_(t, i, c, a)
#define _Group_(a)
#define _On_failure_(a)
#define _Always_(a)
#define _Analysis_assume_(e)
#define _Analysis_noreturn_
#define _Analysis_mode_(m)
#define _Analysis_assume_lock_held_(l)
#define _Analysis_assume_lock_not_held_(l)
#define _Analysis_suppress_lock_checking_(l)
#define _Benign_race_begin_
#define _Benign_race_end_
#define _No_competing_thread_begin_
#define _No_competing_thread_end_

/* Structures */
#define _Field_size_(s)
#define _Field_size_opt_(s)
#define _Field_size_bytes_(s)
#define _Field_size_bytes_opt_(s)
#define _Field_size_part_(s, c)
#define _Field_size_bytes_part_(s, c)
#define _Field_size_full_(s)
#define _Field_size_bytes_full_(s)
#define _Field_range_(l, h)
#define _Field_z_
#define _Struct_size_bytes_(s)

/* IRQL, locks and kernel resources */
#define _IRQL_requires_(l)
#define _IRQL_requires_max_(l)
#define _IRQL_requires_min_(l)
#define _IRQL_requires_same_
#define _IRQL_raises_(l)
#define _IRQL_saves_
#define _IRQL_restores_
#define _IRQL_saves_global_(k, p)
#define _IRQL_restores_global_(k, p)
#define _IRQL_always_function_max_(l)
#define _IRQL_always_function_min_(l)
#define _IRQL_uses_cancel_
#define _IRQL_is_cancel_
#define _Kernel_float_saved_
#define _Kernel_float_restored_
#define _Kernel_float_used_
#define _Kernel_requires_resource_held_(r)
#define _Kernel_requires_resource_not_held_(r)
#define _Kernel_acquires_resource_(r)
#define _Kernel_releases_resource_(r)
#define _Kernel_clear_do_init_(yn)
#define _Requires_lock_held_(l)
#define _Requires_lock_not_held_(l)
#define _Requires_exclusive_lock_held_(l)
#define _Requires_shared_lock_held_(l)
#define _Acquires_lock_(l)
#define _Releases_lock_(l)
#define _Acquires_exclusive_lock_(l)
#define _Releases_exclusive_lock_(l)
#define _Acquires_shared_lock_(l)
#define _Releases_shared_lock_(l)
#define _Guarded_by_(l)
#define _Write_guarded_by_(l)
#define _Interlocked_
#define _Interlocked_operand_
#define _Create_lock_level_(n)
#define _Lock_level_order_(a, b)
#define _Has_lock_kind_(k)

/* The older driver annotations */
#define __drv_allocatesMem(k)
#define __drv_freesMem(k)
#define __drv_aliasesMem
#define __drv_maxIRQL(l)
#define __drv_minIRQL(l)
#define __drv_requiresIRQL(l)
#define __drv_setsIRQL(l)
#define __drv_raisesIRQL(l)
#define __drv_savesIRQL
#define __drv_restoresIRQL
#define __drv_savesIRQLGlobal(k, p)
#define __drv_restoresIRQLGlobal(k, p)
#define __drv_sameIRQL
#define __drv_useCancelIRQL
#define __drv_dispatchType(t)
#define __drv_functionClass(n)
#define __drv_when(c, a)
#define __drv_at(e, a)
#define __drv_arg(e, a)
#define __drv_in(a)
#define __drv_out(a)
#define __drv_strictType(t, m)
#define __drv_strictTypeMatch(m)
#define __drv_acquiresResource(r)
#define __drv_releasesResource(r)
#define __drv_mustHold(r)
#define __drv_neverHold(r)
#define __drv_innerMustHold(r)
#define __drv_innerNeverHold(r)
#define __drv_reportError(m)
#define __drv_valueIs(v)
#define __drv_isObjectPointer
#define __drv_inTry
#define __drv_notInTry
#define __drv_preferredFunction(f, w)
#define __in
#define __in_opt
#define __out
#define __out_opt
#define __inout
#define __inout_opt
#define __in_bcount(s)
#define __in_bcount_opt(s)
#define __in_ecount(s)
#define __in_ecount_opt(s)
#define __out_bcount(s)
#define __out_bcount_opt(s)
#define __out_ecount(s)
#define __out_ecount_opt(s)
#define __inout_bcount(s)
#define __inout_ecount(s)
#define __deref_out
#define __deref_out_opt
#define __deref_inout
#define __checkReturn
#define __success(e)
#define __field_bcount(s)
#define __field_ecount(s)
#define __nullterminated
#define __reserved

#endif
