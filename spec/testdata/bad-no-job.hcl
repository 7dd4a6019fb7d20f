# no job here
